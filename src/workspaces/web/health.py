"""/healthz (the process is up) and /readyz (the database answers with the expected schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from workspaces.errors import Exit, SchemaError, SchemaOutOfDate, ServiceUnavailable
from workspaces.web.errors import error_body
from workspaces.web.schemas import errors

if TYPE_CHECKING:
    from workspaces.schema.status import Report

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about the database)."""
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(request: Request) -> Any:
    """Ready when the database answers and its schema matches this code."""
    try:
        report = await run_in_threadpool(request.app.state.toolkit.status)
    except SchemaError as error:
        down = ServiceUnavailable(error.message, code="database_unavailable")
        return JSONResponse(error_body(down), down.status)
    if not ready(report):
        problems = [p.as_dict() for p in report.problems]
        stale = SchemaOutOfDate(report.problems[0].message, problems=problems)
        return JSONResponse(error_body(stale), stale.status)
    request.app.state.guard.reset()
    return {"status": "ready", "migrations": len(report.applied_ids)}


def ready(report: Report | None) -> bool:
    """What /readyz answers (and /metrics exports): the database answered (a report) and its
    schema is what this code expects."""
    return report is not None and report.exit_code == Exit.OK
