"""The web application. For now: liveness and readiness; the readiness check is the schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.engine import URL
from starlette.concurrency import run_in_threadpool

from workspaces import __version__
from workspaces.schema.errors import Exit, SchemaError
from workspaces.schema.revisions import MigrationSet
from workspaces.schema.toolkit import Toolkit


def create_app(url: URL, migrations: MigrationSet) -> FastAPI:
    app = FastAPI(title="Workspaces", version=__version__)
    toolkit = Toolkit(url, migrations)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (says nothing about the database)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
    async def readyz() -> Any:
        """Ready when the database answers and its schema matches this code."""
        try:
            report = await run_in_threadpool(toolkit.status)
        except SchemaError as error:
            return JSONResponse({"status": "unavailable", "error": error.as_dict()}, 503)
        if report.exit_code != Exit.OK:
            problems = [p.as_dict() for p in report.problems]
            return JSONResponse({"status": "schema_out_of_date", "problems": problems}, 503)
        return {"status": "ready", "migrations": len(report.applied_ids)}

    return app
