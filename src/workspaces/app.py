"""The application, assembled: settings, routers, middleware, error handlers, the schema guard,
and the background loops (email delivery, webhook delivery, housekeeping)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from workspaces import __version__, housekeeping
from workspaces.accounts.pages import router as accounts_pages
from workspaces.accounts.profile_pages import router as profile_pages
from workspaces.accounts.profile_routes import router as profile_router
from workspaces.accounts.routes import router as accounts_router
from workspaces.audit.pages import router as audit_pages
from workspaces.audit.routes import router as audit_router
from workspaces.db import create_app_engine, parse_url
from workspaces.events.routes import router as events_router
from workspaces.invites.pages import router as invites_pages
from workspaces.invites.routes import router as invites_router
from workspaces.mail import delivery
from workspaces.members.pages import router as members_pages
from workspaces.members.routes import router as members_router
from workspaces.oauth import keys
from workspaces.oauth.discovery import router as discovery_router
from workspaces.oauth.pages import router as oauth_pages
from workspaces.oauth.routes import router as oauth_router
from workspaces.schema.serving import ServingStatus
from workspaces.security import Passwords, secret_key
from workspaces.settings import Settings, get_settings
from workspaces.web import html, metrics, reloads
from workspaces.web.deps import hold_connection, needs_connection
from workspaces.web.errors import add_error_handlers
from workspaces.web.guard import SchemaGuard
from workspaces.web.health import StatusRead
from workspaces.web.health import router as health_router
from workspaces.web.middleware import BodyLimit, RequestLog
from workspaces.web.routing import FirstTried, Route
from workspaces.webhooks import delivery as webhooks
from workspaces.webhooks.pages import router as webhooks_pages
from workspaces.webhooks.routes import instance_router as instance_webhooks_router
from workspaces.webhooks.routes import router as webhooks_router
from workspaces.workspaces.pages import router as workspaces_pages
from workspaces.workspaces.routes import router as workspaces_router

log = logging.getLogger("workspaces.web")

# True in the background loops (email, webhooks, housekeeping) and every task they start, so a
# statement listener tells their statements from a request's (the benchmark's capture does).
BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("workspaces_background",
                                                                  default=False)


def check_settings(settings: Settings) -> str:
    """What the application needs from its settings, checked before anything is touched (a
    missing SECRET_KEY, a misconfigured email backend), so that `serve --migrate` never changes
    the schema for a server that cannot start. Returns the secret key."""
    key = secret_key(settings)
    settings.email_mode  # noqa: B018 (raises when EMAIL_BACKEND cannot work)
    return key


# The routes asked for most, tried before the others (web.routing.FirstTried): integrations
# read the member list, and every invite link opens with the preview (docs/benchmarks.md).
FIRST_TRIED = {("/api/workspaces/{slug}/members", frozenset({"GET"})),
               ("/api/invites/{token}", frozenset({"GET"}))}


def _route(app: FastAPI, *routers: APIRouter) -> None:
    """Add the routers' routes to the application itself, in order, rather than with
    `include_router`: FastAPI keeps an included router as one entry that it searches route by
    route on every request, twice (to match, then to handle), with its bookkeeping for each
    route tried, about a tenth of a short request's CPU (docs/benchmarks.md). Our routers carry
    their prefix, tags and responses in their routes and are included once, unchanged, so the
    routes are the same; test_architecture checks that none is left out. A route that takes
    `Conn` opens its connection around its handler (`deps.hold_connection`)."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and needs_connection(route):
                hold_connection(route)
            app.router.routes.append(route)


def _describe_webhooks_when_asked(app: FastAPI) -> None:
    """The OpenAPI document's `webhooks` section (every published event's model), made when
    the document is first asked for: the models cost each worker about 8 MiB that serving
    never uses (docs/benchmarks.md, issue 22)."""
    document = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.webhooks.routes:
            from workspaces.events.openapi import describe_webhooks

            describe_webhooks(app.webhooks)
        return document()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    url = parse_url(settings.database_url)
    # /readyz, /metrics and the guard ask it
    status = ServingStatus(url, settings.workspaces_migrations_dir,
                           pooling=settings.database_pooling)
    key = check_settings(settings)
    guard = SchemaGuard(status)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_app_engine(url, pool_size=settings.database_pool_size,
                                             pool_timeout=settings.database_pool_timeout,
                                             pooling=settings.database_pooling)
        # GETs read on autocommit connections of the same pool (web.deps.connection), with the
        # option set once here rather than on every request's connection.
        app.state.reader = app.state.engine.execution_options(isolation_level="AUTOCOMMIT")
        unwatch_pool = metrics.watch_pool(app.state.engine, settings.database_pool_size)
        # Requests queue here, first come first served, rather than in the pool: its queue lets
        # a newcomer take a connection just given back ahead of those waiting, and under
        # sustained load a few waiters starved past the pool timeout (see deps._transaction).
        slots = max(1, settings.database_pool_size - 1)  # one for the delivery loops
        app.state.db_slots = asyncio.Semaphore(slots)
        app.state.mail_wake = asyncio.Event()
        app.state.webhook_wake = asyncio.Event()
        # Made here, like the slots: asyncio primitives belong to the loop that serves.
        app.state.passwords = Passwords(concurrency=settings.password_hash_concurrency,
                                        wait=settings.password_hash_wait_seconds)
        await keys.make_first_key(app.state.engine, settings)  # before the loops: no queue
        stop = asyncio.Event()
        background = asyncio.Lock()  # the delivery loops take turns with their connection
        marked = BACKGROUND.set(True)  # the loops' tasks (and theirs) copy this context
        worker = asyncio.create_task(delivery.run(app.state.engine, settings, key,
                                                  app.state.mail_wake, stop, slot=background))
        hooks = asyncio.create_task(webhooks.run(app.state.engine, settings, key,
                                                 app.state.webhook_wake, stop, slot=background))
        sweeper = asyncio.create_task(housekeeping.run(app.state.engine, settings, stop))
        BACKGROUND.reset(marked)
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
            # Let sends in flight finish and be recorded; past the wait, their leases expire
            # and another instance sends what was in flight.
            _, late = await asyncio.wait((worker, hooks), timeout=webhooks.TIMEOUT + 5)
            for task in late:
                log.warning("%s did not stop in time; its leases will expire and another "
                            "instance will send what was in flight",
                            "email delivery" if task is worker else "webhook delivery")
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            await sweeper
            unwatch_pool()
            await app.state.engine.dispose()

    # /docs is the app's own page over vendored Swagger UI (web/static/swagger-ui): FastAPI's
    # loads it from a CDN with an inline script, blank offline and outside our CSP.
    app = FastAPI(title="Workspaces", version=__version__, lifespan=lifespan,
                  description="Workspace membership and email invitations.",
                  docs_url=None, redoc_url=None)
    app.router.route_class = Route  # the routes added here (/docs, /favicon.ico) too
    app.state.settings = settings
    app.state.secret_key = key  # signs flash and anonymous cookies, CSRF tokens
    app.state.guard = guard
    app.state.schema_status = status
    app.state.metrics_probe = metrics.DatabaseProbe(status)  # /metrics asks it
    app.state.status_read = StatusRead(status)  # /readyz asks it
    _route(app, accounts_router, profile_router, workspaces_router, members_router,
           invites_router, audit_router, events_router, webhooks_router,
           instance_webhooks_router, oauth_router, accounts_pages, profile_pages,
           workspaces_pages, members_pages, invites_pages, audit_pages, webhooks_pages,
           discovery_router, oauth_pages, reloads.router)
    _describe_webhooks_when_asked(app)
    app.router.routes.insert(0, FirstTried(
        [route for route in app.router.routes if isinstance(route, APIRoute)
         and (route.path, frozenset(route.methods or ())) in FIRST_TRIED]))
    app.mount("/static", StaticFiles(directory=html.HERE / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        """Swagger UI over /openapi.json, every asset served from here."""
        return html.templates.TemplateResponse(request, "docs.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """Asked for by browsers on pages that name no icon (the API docs, files)."""
        return FileResponse(html.HERE / "static" / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outermost: the request id, access line, count and security headers of every answer,
    # 413s and the 500s it makes of unhandled errors included.
    app.add_middleware(RequestLog, hsts=html.served_over_https(settings))

    add_error_handlers(app)
    _route(app, health_router, metrics.router)

    return app
