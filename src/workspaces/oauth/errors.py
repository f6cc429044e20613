"""Errors of the OAuth 2.0 endpoints, in the shape relying-party libraries read (RFC 6749 5.2:
`{"error": code, "error_description": sentence}`), with our request id beside them."""

from __future__ import annotations

from typing import Any, Literal

from workspaces.errors import AppError

# RFC 6749 4.1.2.1 and 5.2, RFC 7009 2.2.1, OpenID Connect Core 3.1.2.6, RFC 6750 3.1.
OAuthCode = Literal[
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "access_denied", "unsupported_response_type",
    "server_error", "temporarily_unavailable", "login_required", "consent_required",
    "interaction_required", "account_selection_required", "invalid_token",
    "insufficient_scope", "unsupported_token_type", "slow_down", "request_not_supported",
    "request_uri_not_supported", "registration_not_supported",
]


class OAuthError(AppError):
    """A refusal by a token, revocation, introspection or userinfo endpoint."""

    code: OAuthCode = "invalid_request"

    def __init__(self, code: OAuthCode, message: str, *, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, status=status, headers=headers)
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.message}
