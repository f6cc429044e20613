"""Every error answered in one shape: JSON `{"error": {"code", "message", ...}}` for the API, an
error page for browsers, with the same code and status, and the id of the request they answer
(quoted to support, it finds the request's log lines)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from workspaces import logs
from workspaces.errors import AppError, InvalidInput, ServiceUnavailable
from workspaces.schema.errors import sqlstate_of
from workspaces.web import html

log = logging.getLogger("workspaces.web")


def respond(request: Request, error: AppError) -> Response:
    """JSON for the API, a page for browsers: the same code and status."""
    if html.is_page(request):
        return html.error_page(request, error)
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)


def error_body(error: AppError) -> dict[str, Any]:
    """`{"error": {"code", "message", ..., "request_id"}}`: the id of the request answered."""
    body = error.body()
    if (request_id := logs.REQUEST_ID.get()) is not None:
        if isinstance(body["error"], dict):
            body["error"]["request_id"] = request_id
        else:  # OAuth's flat shape (oauth.errors)
            body["request_id"] = request_id
    return body


def internal_error() -> AppError:
    """A failure of ours: the person is told it was logged (the log has it, with the id)."""
    return AppError("Something went wrong on our side; it has been logged.",
                    code="internal_error", status=500)


def _in_our_words(problem: Any) -> str:
    """A page's sentence for a form field that FastAPI's checks refused (too long, absent)."""
    name = str(problem["loc"][-1]).replace("_", " ")
    limit = (problem.get("ctx") or {}).get("max_length")
    if problem["type"] == "string_too_long" and limit:
        return (f"The {name} is longer than {limit} characters: shorten it and send the form "
                "again.")
    return f"The {name} was missing or unreadable: reload the page and fill in the form again."


def add_error_handlers(app: FastAPI) -> None:
    """Render our errors, FastAPI's and Starlette's, and database failures, in one shape."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return respond(request, exc)

    @app.exception_handler(html.SignInRequired)
    async def sign_in_required(request: Request, exc: html.SignInRequired) -> Response:
        return RedirectResponse(html.sign_in_url(exc.next_url), status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        if html.is_page(request):  # people read our sentences, not pydantic's
            said = dict.fromkeys(_in_our_words(e) for e in exc.errors())
            return respond(request, InvalidInput(" ".join(said)))
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                  for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return respond(request, InvalidInput(f"Invalid input: {summary}", fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Routing and body-parsing errors get the same shape as every other error."""
        codes = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed",
                 413: "body_too_large"}
        message = {404: "There is nothing at this address.",
                   405: f"{request.method} is not allowed here.",
                   413: f"The request body is larger than the limit of "
                        f"{request.app.state.settings.max_body_bytes} bytes."}.get(
            exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the matched route's
            allowed: set[str] = set()
            for route in app.routes:
                match, _ = route.matches(request.scope)
                if match != Match.NONE:
                    allowed |= getattr(route, "methods", None) or set()
            headers["Allow"] = ", ".join(sorted(allowed))
        if html.is_page(request):
            await html.find_page_user(request)
        return respond(request, AppError(message, status=exc.status_code,
                                         code=codes.get(exc.status_code, "http_error"),
                                         headers=headers))

    async def database_error(request: Request, exc: Exception) -> Response:
        if (sqlstate_of(exc) or "").startswith("22"):  # a data exception: bad input, not a bug
            return respond(request, InvalidInput(
                "The input contains characters or values the database cannot store.",
                code="invalid_input"))
        translated = await request.app.state.guard.translate(exc)
        if translated is None:
            log.exception("unexpected database error on %s %s", request.method,
                          logs.redact(request.url.path))
            return respond(request, internal_error())
        return respond(request, translated)

    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(OSError, database_error)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> Response:
        """Every database connection of this worker stayed busy for the pool timeout."""
        log.warning("no database connection free within the pool timeout on %s %s",
                    request.method, logs.redact(request.url.path))
        return respond(request, ServiceUnavailable(
            "The server is too busy to take this request; retry in a moment.",
            code="server_busy", headers={"Retry-After": "1"}))
