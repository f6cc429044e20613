"""/healthz (the process is up) and /readyz (this process can serve its requests).

The readiness rule (docs/deployment.md, "Readiness"): 503 when the database does not answer or
lacks a table or column this code uses; 200 otherwise, `"status": "degraded"` with the problems
when `db status` finds drift the code runs on. The rule itself is `Report.serves`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from workspaces.errors import SchemaError, SchemaOutOfDate, ServiceUnavailable
from workspaces.schema.report import describe_keys
from workspaces.web.errors import error_body
from workspaces.web.guard import LOOK
from workspaces.web.routing import Route
from workspaces.web.schemas import errors

if TYPE_CHECKING:
    from workspaces.schema.report import Report
    from workspaces.schema.serving import ServingStatus

router = APIRouter(route_class=Route, tags=["operations"])


class StatusRead:
    """The schema status for /readyz, read by one reader at a time: probes arriving while a
    read runs share its answer (or its error), so any number of them, or a client looping on
    /readyz, costs the database one status read at a time per process, never a pile of them.
    Nothing is kept between reads: each answer is as fresh as the read it waited for."""

    def __init__(self, status: ServingStatus) -> None:
        self.status = status
        self._running: asyncio.Future[Report] | None = None

    async def report(self) -> Report:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self.status.report())
        return await asyncio.shield(self._running)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about the database)."""
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(request: Request) -> Any:
    """Ready when the database answers and has every table and column this code uses;
    "degraded" (still 200) with the problems when the schema drifted in a way it runs on."""
    guard = request.app.state.guard
    try:
        report = await request.app.state.status_read.report()
    except SchemaError as error:
        down = ServiceUnavailable(error.message, code="database_unavailable")
        guard.not_ready(f"the database does not answer: {error.message}",
                        error.fix.splitlines()[0] if error.fix else None)
        return JSONResponse(error_body(down), down.status)
    problems = [p.as_dict() for p in report.problems]
    if not report.serves:
        missing, step = describe_keys(report.absent), report.next_step or LOOK
        stale = SchemaOutOfDate(
            f"The database lacks what this code uses: {missing}. An operator must run "
            f"`{step}`.", next_step=step, missing=[k.describe() for k in report.absent],
            problems=problems)
        guard.not_ready(f"the database lacks {missing}", step)
        return JSONResponse(error_body(stale), stale.status)
    guard.ready()
    if problems:
        return {"status": "degraded", "migrations": len(report.applied_ids),
                "next_step": report.next_step, "problems": problems}
    return {"status": "ready", "migrations": len(report.applied_ids)}


def ready(report: Report | None) -> bool:
    """What /readyz answers (and /metrics exports): the database answered (a report) and this
    code can serve on it."""
    return report is not None and report.serves
