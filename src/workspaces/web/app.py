"""The application factory: routers, error rendering, schema guard, the email delivery loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from workspaces import __version__, housekeeping
from workspaces.accounts.pages import router as accounts_pages
from workspaces.accounts.routes import router as accounts_router
from workspaces.audit.routes import router as audit_router
from workspaces.db import create_app_engine, parse_url
from workspaces.errors import (
    AppError,
    Exit,
    InvalidInput,
    SchemaError,
    SchemaOutOfDate,
    ServiceUnavailable,
)
from workspaces.invites.pages import router as invites_pages
from workspaces.invites.routes import router as invites_router
from workspaces.mail import delivery
from workspaces.members.pages import router as members_pages
from workspaces.members.routes import router as members_router
from workspaces.schema.errors import sqlstate_of
from workspaces.schema.revisions import MigrationSet
from workspaces.schema.toolkit import Toolkit
from workspaces.security import Passwords, secret_key
from workspaces.settings import Settings, get_settings
from workspaces.web import html
from workspaces.web.guard import SchemaGuard
from workspaces.web.middleware import BodyLimit, SecurityHeaders
from workspaces.web.schemas import errors
from workspaces.workspaces.pages import router as workspaces_pages
from workspaces.workspaces.routes import router as workspaces_router

log = logging.getLogger("workspaces.web")


class RedactInviteTokens(logging.Filter):
    """Access logs print request paths; an invite link's token must not reach them."""

    pattern = re.compile(r"(/invites/)[^/?#\s\"]+")

    @classmethod
    def path(cls, request: Request) -> str:
        """The request's path as the application's own log lines may show it."""
        return cls.pattern.sub(r"\1[redacted]", request.url.path)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.pattern.sub(r"\1[redacted]", a) if isinstance(a, str)
                                else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.pattern.sub(r"\1[redacted]", record.msg)
        return True


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    url = parse_url(settings.database_url)
    migrations = MigrationSet(settings.workspaces_migrations_dir)
    key = secret_key(settings)  # fail at start, not at the first invite
    settings.email_mode  # noqa: B018 (likewise: a misconfigured backend stops the start)
    guard = SchemaGuard(migrations)
    toolkit = Toolkit(url, migrations)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_app_engine(url, pool_size=settings.database_pool_size,
                                             pool_timeout=settings.database_pool_timeout)
        # Requests queue here, first come first served, rather than in the pool: its queue lets
        # a newcomer take a connection just given back ahead of those waiting, and under
        # sustained load a few waiters starved past the pool timeout (see deps._transaction).
        slots = max(1, settings.database_pool_size - 1)  # one connection for the email loop
        app.state.db_slots = asyncio.Semaphore(slots)
        app.state.mail_wake = asyncio.Event()
        stop = asyncio.Event()
        worker = asyncio.create_task(delivery.run(app.state.engine, settings, key,
                                                  app.state.mail_wake, stop))
        sweeper = asyncio.create_task(housekeeping.run(app.state.engine, stop))
        # Everything loaded so far (modules, routes, compiled statements) lives as long as the
        # process: keep it out of the collector's generations, so collections under load only
        # walk what requests allocate (shorter pauses, a shorter latency tail). No collection
        # first: in a test process with several apps it would cost 0.1 s per start; unfreezing
        # at shutdown hands anything frozen back to the collector.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            stop.set()
            app.state.mail_wake.set()
            try:  # let a send in flight finish and be recorded
                await asyncio.wait_for(worker, timeout=15)
            except TimeoutError:
                log.warning("email delivery did not stop in 15 s; its lease will expire "
                            "and another instance will send what was in flight")
            await sweeper
            await app.state.engine.dispose()

    app = FastAPI(title="Workspaces", version=__version__, lifespan=lifespan,
                  description="Workspace membership and email invitations.")
    app.state.settings = settings
    app.state.passwords = Passwords(concurrency=settings.password_hash_concurrency,
                                    wait=settings.password_hash_wait_seconds)
    app.state.secret_key = key  # signs flash and anonymous cookies, CSRF tokens
    app.state.guard = guard
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactInviteTokens) for f in access_log.filters):
        access_log.addFilter(RedactInviteTokens())
    for router in (accounts_router, workspaces_router, members_router, invites_router,
                   audit_router, accounts_pages, workspaces_pages, members_pages, invites_pages):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=html.HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders, hsts=html.served_over_https(settings))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    def respond(request: Request, error: AppError) -> Response:
        """JSON for the API, a page for browsers: the same code and status."""
        if html.is_page(request):
            return html.error_page(request, error)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return respond(request, exc)

    @app.exception_handler(html.SignInRequired)
    async def sign_in_required(request: Request, exc: html.SignInRequired) -> Response:
        return RedirectResponse(html.sign_in_url(exc.next_url), status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
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
                        f"{settings.max_body_bytes} bytes."}.get(
            exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the matched route's
            allowed: set[str] = set()
            for route in app.routes:
                match, _ = route.matches(request.scope)
                if match != Match.NONE:
                    allowed |= getattr(route, "methods", None) or set()
            headers["Allow"] = ", ".join(sorted(allowed))
        return respond(request, AppError(message, status=exc.status_code,
                                         code=codes.get(exc.status_code, "http_error"),
                                         headers=headers))

    async def database_error(request: Request, exc: Exception) -> Response:
        if (sqlstate_of(exc) or "").startswith("22"):  # a data exception: bad input, not a bug
            return respond(request, InvalidInput(
                "The input contains characters or values the database cannot store.",
                code="invalid_input"))
        translated = guard.translate(exc)
        if translated is None:
            log.exception("unexpected database error on %s %s", request.method,
                          RedactInviteTokens.path(request))
            return respond(request, AppError("Something went wrong on our side; it has been "
                                             "logged.", code="internal_error", status=500))
        return respond(request, translated)

    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(OSError, database_error)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> Response:
        """Every database connection of this worker stayed busy for the pool timeout."""
        log.warning("no database connection free within the pool timeout on %s %s",
                    request.method, RedactInviteTokens.path(request))
        return respond(request, ServiceUnavailable(
            "The server is too busy to take this request; retry in a moment.",
            code="server_busy", headers={"Retry-After": "1"}))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (says nothing about the database)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses=errors(503))
    async def readyz() -> Any:
        """Ready when the database answers and its schema matches this code."""
        try:
            report = await run_in_threadpool(toolkit.status)
        except SchemaError as error:
            body = {"error": {"code": "database_unavailable", "message": error.message}}
            return JSONResponse(body, 503)
        if report.exit_code != Exit.OK:
            problems = [p.as_dict() for p in report.problems]
            stale = SchemaOutOfDate(report.problems[0].message, problems=problems)
            return JSONResponse(stale.body(), stale.status)
        guard.reset()
        return {"status": "ready", "migrations": len(report.applied_ids)}

    return app
