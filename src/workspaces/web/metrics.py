"""GET /metrics for Prometheus: who may read it, what it answers, and what feeds it (every
request counted by route template, by web/middleware.py's RequestLog; the database pool
watched; the database read at scrape).

What each process counts lives in metrics/process.py, what the database says in
metrics/database.py; this module serves them.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest
from sqlalchemy import event
from starlette.routing import Mount
from starlette.types import Scope

from workspaces.errors import Forbidden
from workspaces.metrics import database, process
from workspaces.networks import in_networks
from workspaces.web.deps import client_address, from_trusted_proxy
from workspaces.web.health import ready
from workspaces.web.routing import Route

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from workspaces.schema.serving import ServingStatus

router = APIRouter(route_class=Route)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CACHE_SECONDS = 10.0  # one schema status costs ~0.1 s of CPU on PostgreSQL (docs/monitoring.md)
WAIT_SECONDS = 5.0  # a scrape waits this long for the database, then says it is not up
FORWARDING = ("x-forwarded-for", "forwarded", "x-real-ip")


class MetricsForbidden(Forbidden):
    code = "metrics_forbidden"


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus' text format: this process's (or every worker's) counters, and the facts of
    the database. Reads only."""
    _admit(request)
    state = request.app.state
    reading = await state.metrics_probe.reading()
    facts = [*database.schema_facts(reading.report),
             database.Fact(database.READY, "1 when /readyz answers 200: the database answers "
                           "and has every table and column this code uses (degraded, with "
                           "workspaces_schema_ok 0, is ready).",
                           int(ready(reading.report))),
             *reading.outbox, *database.build_facts(state.schema_status.migrations)]
    body = generate_latest(process.source()) + database.exposition(facts)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def _admit(request: Request) -> None:
    """Admit METRICS_TOKEN as a bearer token from anywhere, else clients in
    METRICS_ALLOWED_NETWORKS. A forwarded request is judged by its client, never by the proxy's
    own address: from a proxy outside TRUSTED_PROXIES it is refused (a reverse proxy on this
    machine would otherwise pass the internet off as loopback)."""
    settings = request.app.state.settings
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if settings.metrics_token and scheme.lower() == "bearer":
        if hmac.compare_digest(given.strip().encode(), settings.metrics_token.encode()):
            return
        raise MetricsForbidden("The bearer token is not METRICS_TOKEN. Send the value of "
                               "METRICS_TOKEN as `Authorization: Bearer <token>`.")
    headers = request.headers
    if any(name in headers for name in FORWARDING) and (
            not from_trusted_proxy(request) or "x-forwarded-for" not in headers):
        peer = request.client.host if request.client else "unknown"
        raise MetricsForbidden(
            f"This request was forwarded by {peer}, which is not in TRUSTED_PROXIES (or sent "
            "no X-Forwarded-For), so its client is unknown. Scrape the server directly, add "
            "the proxy to TRUSTED_PROXIES, or set METRICS_TOKEN and send it as a bearer token.")
    client = client_address(request)
    if not in_networks(client, settings.metrics_allowed_networks):
        raise MetricsForbidden(
            f"/metrics is not served to {client}. Add the scraper's address to "
            "METRICS_ALLOWED_NETWORKS, or set METRICS_TOKEN and send it as "
            "`Authorization: Bearer <token>`.")


class DatabaseProbe:
    """The database's facts for /metrics, read at most once every CACHE_SECONDS and by one
    reader at a time: scrapes never pile work on a slow database. A scrape waits
    WAIT_SECONDS at most; a database that has not answered by then is reported as not up (the
    read goes on, and its result serves the next scrape)."""

    def __init__(self, status: ServingStatus) -> None:
        self.status = status
        self._last: tuple[float, database.Reading] | None = None
        self._reading: asyncio.Task[database.Reading] | None = None

    async def reading(self) -> database.Reading:
        if self._last and time.monotonic() - self._last[0] < CACHE_SECONDS:
            return self._last[1]
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), WAIT_SECONDS)
        except TimeoutError:
            return database.Reading(None, [])

    async def _read(self) -> database.Reading:
        reading = await database.read(self.status)
        self._last = (time.monotonic(), reading)
        return reading


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/api/workspaces/{slug}/invites`), never the
    path itself: no tokens in labels, and a bounded number of them."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else process.UNMATCHED


def watch_pool(engine: AsyncEngine, size: int) -> Callable[[], None]:
    """Keep the connection gauges of this engine's pool; returns what stops it (the pool's
    share of the gauges given back)."""
    pool = engine.sync_engine.pool

    def checked_out(*_: object) -> None:
        process.DB_IN_USE.inc()

    def checked_in(*_: object) -> None:
        process.DB_IN_USE.dec()

    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)
    process.DB_POOL_SIZE.inc(size)

    def stop() -> None:
        event.remove(pool, "checkout", checked_out)
        event.remove(pool, "checkin", checked_in)
        process.DB_POOL_SIZE.dec(size)

    return stop

