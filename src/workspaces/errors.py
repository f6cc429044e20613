"""Domain errors: each has a stable code, a sentence a person can act on, and an HTTP status.

Services raise these; the web layer renders them as `{"error": {"code", "message"}}` and the
CLI as `error[code]: message`. Nothing else is mapped to a status.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class InvalidInput(AppError):
    status, code = 422, "invalid_input"


class NotAuthenticated(AppError):
    status, code = 401, "not_authenticated"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class Gone(AppError):
    status, code = 410, "gone"


class RateLimited(AppError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"
