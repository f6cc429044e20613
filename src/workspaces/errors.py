"""Errors: each has a stable code, a sentence a person can act on and, where there is one, the
next step (`fix`, for operators).

`Error` is the one base. `AppError` adds the HTTP status that services' errors carry (the web
layer renders them as `{"error": {"code", "message", ...}}`, pages as a message); `SchemaError`
adds the exit code and the database's own words that the schema toolkit's errors carry. The CLI
prints any of them as `error[code]: message` plus `next: fix`. Nothing else is mapped to a status
or an exit code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

# The programs a printed next step may run. A line of a `fix` that starts with one of them is a
# command, printed as `next:` (or `or:`) to be pasted as it stands; any other line is advice
# that no command carries out, printed as `hint:`.
PROGRAMS = ("workspaces", "psql", "createdb", "pg_dump", "pg_restore")


def commands(fix: str | None) -> list[str]:
    """The lines of a fix that are commands, in order (the first is the one to run)."""
    return [line for line in _lines(fix) if line.split(" ", 1)[0] in PROGRAMS]


def hints(fix: str | None) -> list[str]:
    """The lines of a fix that are advice, not commands."""
    return [line for line in _lines(fix) if line.split(" ", 1)[0] not in PROGRAMS]


def _lines(fix: str | None) -> list[str]:
    return [line.strip() for line in (fix or "").splitlines() if line.strip()]


class Exit(IntEnum):
    """Exit codes of the CLI (and of `db status`): the highest problem wins."""

    OK = 0
    ERROR = 1
    PENDING = 2
    FAILED = 3
    DIVERGED = 4
    DRIFT = 5


class Error(Exception):
    code = "error"
    fix: str | None = None
    detail: str | None = None  # the database's or a server's own words, when they help
    exit_code = Exit.ERROR

    def __init__(self, message: str, *, code: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if fix is not None:
            self.fix = fix

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "fix": self.fix,
                "detail": self.detail, "exit_code": int(self.exit_code)}


class AppError(Error):
    status = 400
    code = "bad_request"
    # Commit what the request wrote before this refusal (see `counted`); else all rolls back.
    keep_writes = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None, fix: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message, code=code, fix=fix)
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


AppErrorT = TypeVar("AppErrorT", bound=AppError)


def counted(error: AppErrorT) -> AppErrorT:
    """`error`, refusing after its attempt was counted: the counts commit with the refusal
    (an answer about an address, such as `email_confusable`, must cost one attempt)."""
    error.keep_writes = True
    return error


class SchemaError(Error):
    """A problem of the schema toolkit the operator can fix, with its exit code."""

    def __init__(self, code: str, message: str, *, fix: str | None = None,
                 exit_code: Exit = Exit.ERROR, detail: str | None = None) -> None:
        super().__init__(message, code=code, fix=fix)
        self.exit_code = exit_code
        self.detail = detail

    def restated(self, message: str, *, code: str | None = None, fix: str | None = None,
                 exit_code: Exit = Exit.ERROR, detail: str | None = None) -> SchemaError:
        """This error told in the words of the command it stopped (what was changed, what
        to do next), keeping its code, fix and detail unless given others."""
        return SchemaError(code or self.code, message, fix=fix or self.fix,
                           exit_code=exit_code, detail=detail or self.detail)


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


class SchemaOutOfDate(ServiceUnavailable):
    """The database's schema does not match this code: the one `schema_out_of_date`, answered
    by the schema guard (a request touched a missing table), `/readyz`, the pages, and `serve`
    when it refuses to start (with the exit code of `db status`)."""

    code = "schema_out_of_date"

    def __init__(self, message: str, *, fix: str | None = None,
                 exit_code: Exit = Exit.PENDING, **extra: Any) -> None:
        super().__init__(message, fix=fix, **extra)
        self.exit_code = exit_code
