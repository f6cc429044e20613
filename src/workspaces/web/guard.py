"""The schema guard: database errors become clear 503s instead of 500s, and the log says once
what went wrong, what fixes it, and when the process can serve again.

A request that hits a missing table answers 503 `schema_out_of_date` naming the table, the
migration that creates it, and the fix `workspaces db status` prints first (Report.next_step:
complete, resolve, repair or deploy, whichever it is); the log says so once per table, not
once per request. /readyz tells the guard when readiness changes: one WARNING when it turns
503 (what is missing, the fix), one INFO when it answers 200 again (what was wrong before).
Nothing is cached for long: once the schema is whole, requests work again without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from workspaces.errors import SchemaError, SchemaOutOfDate, ServiceUnavailable
from workspaces.schema.errors import sqlstate_of

if TYPE_CHECKING:
    from workspaces.schema.serving import ServingStatus

log = logging.getLogger("workspaces.guard")

_MISSING_TABLE = re.compile(
    r'relation "(?:\w+\.)?(\w+)" does not exist|no such table: (?:\w+\.)?(\w+)'
)
_MISSING_COLUMN = re.compile(r'column "?([\w.]+)"? does not exist|no such column: ([\w.]+)|'
                             r"has no column named (\w+)")
_NO_UNIQUE_INDEX = re.compile(r"no unique or exclusion constraint matching the ON CONFLICT|"
                              r"ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE")
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}
_UNAVAILABLE_TEXT = ("connection refused", "connection was closed", "connection is closed",
                     "terminating connection", "the database system is", "could not connect",
                     "connection reset", "database is locked", "timeout")


# The one step that always applies when the status could not be read to name a better one.
LOOK = "workspaces db status  # explains each problem and its fix"
DIAGNOSIS_SECONDS = 5.0  # one status read serves the 503s of an incident for this long


@dataclass(frozen=True)
class Diagnosis:
    """What `db status` says now, as far as a 503 needs it: the first fix it prints, and who
    holds the deploy lock (a schema change in progress: the problem may heal by itself)."""

    next_step: str
    deploying: str | None


class SchemaGuard:
    def __init__(self, status: ServingStatus) -> None:
        self.status = status
        # Which migration creates each table: worked out (with Alembic) when a request first
        # finds a table missing, not by every worker at start.
        self._creators: asyncio.Task[dict[str, str]] | None = None
        self.logged: dict[str, str] = {}  # what is missing: what was said
        self.unready: str | None = None  # why /readyz turned 503, until it answers 200 again
        self._diagnosis: tuple[float, Diagnosis] | None = None
        self._diagnosing: asyncio.Task[Diagnosis] | None = None

    async def creator(self, table: str) -> str | None:
        """The migration that creates `table` (None: none of this code's)."""
        found = self._creators
        if found is None or (found.done() and (found.cancelled() or found.exception())):
            found = self._creators = asyncio.create_task(asyncio.to_thread(self._find_creators))
        try:
            return (await asyncio.shield(found)).get(table)
        except Exception:  # the revisions cannot be read: the 503 names no migration
            log.exception("could not work out which migration creates %s", table)
            return None

    def _find_creators(self) -> dict[str, str]:
        from workspaces.schema.expected import build_model

        origin = build_model(self.status.toolkit.migrations).origin
        return {key.table: mid for key, mid in origin.items() if key.kind == "table"}

    def not_ready(self, what: str, fix: str | None) -> None:
        """/readyz answers 503: say why and what fixes it, once until it answers 200 again."""
        if self.unready is None:
            self.unready = what
            log.warning("not ready: /readyz answers 503: %s; fix: %s", what, fix or LOOK)

    def ready(self) -> None:
        """/readyz answers 200: if it answered 503 before, or a request found something
        missing, say once that the process serves again and what was wrong."""
        said = [*([self.unready] if self.unready else []), *self.logged.values()]
        if said:
            log.info("recovered: /readyz answers 200 again (before: %s)", "; ".join(said))
        self.logged.clear()
        self.unready = None
        self._diagnosis = None

    async def diagnosis(self) -> Diagnosis:
        """The status's word on the schema, read again once DIAGNOSIS_SECONDS old, by one
        reader at a time (the requests failing together wait for the same read)."""
        if self._diagnosis and time.monotonic() - self._diagnosis[0] < DIAGNOSIS_SECONDS:
            return self._diagnosis[1]
        if self._diagnosing is None or self._diagnosing.done():
            self._diagnosing = asyncio.create_task(self._diagnose())
        return await asyncio.shield(self._diagnosing)

    async def _diagnose(self) -> Diagnosis:
        try:
            report = await self.status.report()  # it says who holds the deploy lock too
            step, deploying = report.next_step, report.in_progress
        except SchemaError:  # the database left meanwhile: its own 503 follows
            step, deploying = None, None
        found = Diagnosis(step or LOOK, deploying)
        self._diagnosis = (time.monotonic(), found)
        return found

    async def translate(self, exc: BaseException) -> ServiceUnavailable | None:
        """A 503 for a missing table or column, or for a database that is not answering."""
        text = " ".join(str(getattr(exc, "orig", None) or exc).split())
        state = sqlstate_of(exc)
        table_match = _MISSING_TABLE.search(text)
        if table_match or state == "42P01":
            table = next((g for g in table_match.groups() if g), "?") if table_match else "?"
            migration = await self.creator(table) or "a pending migration"
            return await self._out_of_date(
                table, f"table {table} is missing (migration {migration} creates it)",
                table=table, migration=migration)
        column_match = _MISSING_COLUMN.search(text)
        if column_match or state == "42703":
            column = next((g for g in column_match.groups() if g), "?") if column_match else "?"
            return await self._out_of_date(column, f"column {column} is missing", column=column)
        if state == "42P10" or _NO_UNIQUE_INDEX.search(text):
            # An INSERT ... ON CONFLICT whose unique index was dropped (the pending-invite
            # index decides two invites racing for one address): a dropped object as above.
            return await self._out_of_date(
                "unique index", "a unique index this request relies on is missing")
        lowered = text.lower()
        if (state in _UNAVAILABLE_STATES or isinstance(exc, OSError | TimeoutError)
                or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
                or any(needle in lowered for needle in _UNAVAILABLE_TEXT)):
            self._log_once("database", f"database unavailable: {text[:200]}")
            return ServiceUnavailable(
                "The database is not answering; try again in a few seconds.",
                code="database_unavailable", headers={"Retry-After": "5"},
            )
        return None

    async def _out_of_date(self, key: str, what: str, **names: Any) -> SchemaOutOfDate:
        """The 503 for a missing object, naming the fix `db status` prints first; whether it
        may heal by itself (a deploy holds the lock) is for the error page to tell people."""
        found = await self.diagnosis()
        self._log_once(key, f"{what}; fix: {found.next_step}")
        message = (f"A schema change is in progress: {what}. Try again in a few minutes; if "
                   f"it persists, an operator must run `{found.next_step}`."
                   if found.deploying else
                   f"{what[0].upper()}{what[1:]}. An operator must run `{found.next_step}`.")
        return SchemaOutOfDate(message, next_step=found.next_step,
                               deploy_in_progress=found.deploying is not None, **names)

    def _log_once(self, key: str, message: str) -> None:
        if key not in self.logged:
            self.logged[key] = message
            log.error("schema guard: %s (logged once until the schema is whole again)", message)
