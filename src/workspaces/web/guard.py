"""The schema guard: database errors become clear 503s instead of 500s.

A request that hits a missing table answers 503 `schema_out_of_date` naming the table and the
migration that creates it; the log says so once per table, not once per request. Nothing is
cached: once `workspaces db deploy` or `db repair` restores the table, requests work again, and
the next /readyz that finds the schema whole logs "schema recovered" with what was missing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from workspaces.errors import SchemaOutOfDate, ServiceUnavailable
from workspaces.schema.errors import sqlstate_of
from workspaces.schema.expected import ObjectKey, build_model
from workspaces.schema.revisions import MigrationSet

log = logging.getLogger("workspaces.guard")

_MISSING_TABLE = re.compile(
    r'relation "(?:\w+\.)?(\w+)" does not exist|no such table: (?:\w+\.)?(\w+)'
)
_MISSING_COLUMN = re.compile(r'column "?([\w.]+)"? does not exist|no such column: ([\w.]+)|'
                             r"has no column named (\w+)")
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}
_UNAVAILABLE_TEXT = ("connection refused", "connection was closed", "connection is closed",
                     "terminating connection", "the database system is", "could not connect",
                     "connection reset", "database is locked", "timeout")


@dataclass
class SchemaGuard:
    migrations: MigrationSet
    logged: dict[str, str] = field(default_factory=dict)  # what is missing: what was said

    def __post_init__(self) -> None:
        self._origin = build_model(self.migrations).origin

    def creator(self, table: str) -> str | None:
        return self._origin.get(ObjectKey("table", table))

    def reset(self) -> None:
        """The schema is whole again (/readyz found it so): say so, once, if anything was
        reported missing, and report anything that goes missing again."""
        if self.logged:
            log.info("schema recovered: the database and its schema are whole again (before: "
                     "%s)", "; ".join(self.logged.values()))
        self.logged.clear()

    def translate(self, exc: BaseException) -> ServiceUnavailable | None:
        """A 503 for a missing table or column, or for a database that is not answering."""
        text = " ".join(str(getattr(exc, "orig", None) or exc).split())
        state = sqlstate_of(exc)
        table_match = _MISSING_TABLE.search(text)
        if table_match or state == "42P01":
            table = next((g for g in table_match.groups() if g), "?") if table_match else "?"
            migration = self.creator(table) or "a pending migration"
            self._log_once(table, f"table {table} is missing; migration {migration} creates it")
            return SchemaOutOfDate(
                f"The service is being upgraded: table {table} does not exist yet (migration "
                f"{migration} creates it). An operator must run `workspaces db deploy` or "
                "`workspaces db repair`.",
                table=table, migration=migration,
            )
        column_match = _MISSING_COLUMN.search(text)
        if column_match or state == "42703":
            column = next((g for g in column_match.groups() if g), "?") if column_match else "?"
            self._log_once(column, f"column {column} is missing")
            return SchemaOutOfDate(
                f"The service is being upgraded: column {column} does not exist yet. An "
                "operator must run `workspaces db deploy` or `workspaces db repair`.",
                column=column,
            )
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

    def _log_once(self, key: str, message: str) -> None:
        if key not in self.logged:
            self.logged[key] = message
            log.error("schema guard: %s (logged once until the schema is whole again)", message)
