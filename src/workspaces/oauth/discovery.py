"""What relying parties read before anything else: the OpenID Provider configuration
(OpenID Connect Discovery 1.0) and the key set that verifies our tokens (JWKS, RFC 7517).

Both are GETs and change nothing: the first signing key is made when the server starts
(`keys.make_first_key`) or by the first token request, never here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from workspaces.oauth import keys, scopes, tokens
from workspaces.settings import Settings
from workspaces.web.deps import AppSettings, Conn
from workspaces.web.routing import Route
from workspaces.web.schemas import errors

router = APIRouter(route_class=Route, tags=["openid connect"])

# The configuration changes only with BASE_URL or a new release: a short cache is enough.
DISCOVERY_MAX_AGE_SECONDS = 3600
# Any web page may read these public documents (a browser-side relying party fetches them).
_OPEN = {"Access-Control-Allow-Origin": "*"}


def configuration(settings: Settings) -> dict[str, Any]:
    """The OpenID Provider metadata: where each endpoint is and what it supports."""
    issuer = tokens.issuer(settings)
    secret_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "end_session_endpoint": f"{issuer}/oauth/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [tokens.ALG],
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        # A public client revokes its own tokens naming only its client_id (RFC 7009 2.1);
        # introspection is for confidential clients.
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(scopes.ALL_SCOPES),
        "claims_supported": list(tokens.CLAIMS_SUPPORTED),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,  # Discovery's default is true: say no
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": ["none", "login", "consent"],
    }


@router.get("/.well-known/openid-configuration")
async def openid_configuration(settings: AppSettings) -> Response:
    """The OpenID Provider configuration (OpenID Connect Discovery 1.0)."""
    body = json.dumps(configuration(settings), separators=(",", ":")).encode()
    return Response(body, media_type="application/json", headers={
        **_OPEN, "Cache-Control": f"public, max-age={DISCOVERY_MAX_AGE_SECONDS}"})


@router.get("/oauth/jwks", responses=errors(503))
async def jwks(request: Request, conn: Conn, settings: AppSettings) -> Response:
    """The public keys that verify our ID and access tokens (JWKS, RFC 7517).

    Cached by relying parties for JWKS_MAX_AGE_SECONDS, which is also how long a rotated-in
    key waits before it signs: every cached copy holds a key before its first token.
    """
    published = await keys.published_keys(conn, settings)
    if not published:
        raise keys.NoSigningKeys(
            "No signing key exists yet: the server makes one when it starts. Try again in a "
            "moment.", headers={"Retry-After": "5", "Cache-Control": "no-store", **_OPEN})
    body = json.dumps({"keys": published}, separators=(",", ":"), sort_keys=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {**_OPEN, "ETag": etag,
               "Cache-Control": f"public, max-age={settings.jwks_max_age_seconds}"}
    asked = request.headers.get("if-none-match", "")
    if etag in (tag.strip().removeprefix("W/") for tag in asked.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
