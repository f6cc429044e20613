"""The ledger: one row per migration attempt or decision, appended and never deleted; and the
history: one row per command that wrote (or tried to), whatever its outcome.

A migration's state is the outcome of its latest row: `applied`, `failed` or `rolled_back`
(the last means "not applied": deploy will apply it again). The ledger replaces Alembic's
`alembic_version` table, which holds only the head and cannot say what failed or when.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    update,
)

from workspaces import __version__
from workspaces.db import whoami
from workspaces.logs import REDACTED, shown_url
from workspaces.schema.report import APPLIED, FAILED, ROLLED_BACK, Entry
from workspaces.schema.report import iso as _iso

__all__ = ["APPLIED", "FAILED", "ROLLED_BACK", "Entry"]

LEDGER_TABLE = "workspaces_schema_ledger"

ledger_metadata = MetaData()
ledger = Table(
    LEDGER_TABLE,
    ledger_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("migration_id", String(255), nullable=False, index=True),
    # deploy | rollback | resolve | baseline
    Column("action", String(32), nullable=False),
    # applied | failed | rolled_back
    Column("outcome", String(16), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("rolled_back_at", DateTime(timezone=True)),
    Column("duration_ms", Integer),
    Column("error", Text),
    Column("note", Text),
    Column("applied_by", String(255), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("tool_version", String(64), nullable=False),
)

HISTORY_TABLE = "workspaces_schema_history"

# Every command that took the deploy lock: deploy, resolve, repair, rollback, baseline,
# execute, including the attempts that failed or were refused (their transaction rolled back, so
# the row is written in one of its own). The ledger says what state each migration is in; this
# says who did what to the database, when, and how it ended.
history = Table(
    HISTORY_TABLE,
    ledger_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("command", String(32), nullable=False),
    Column("arguments", Text),  # what was asked (no secrets: never the database URL)
    Column("outcome", String(16), nullable=False),  # ok | error | cancelled
    Column("summary", Text),
    Column("error_code", String(64)),
    Column("error", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),  # user@host
    Column("application", String(255), nullable=False),
    Column("target", String(1000), nullable=False),  # the URL as logs.shown_url shows it
)

OK, ERROR, CANCELLED = "ok", "error", "cancelled"


@dataclass(frozen=True)
class Event:
    """One row of the history."""

    seq: int
    command: str
    arguments: str | None
    outcome: str
    summary: str | None
    error_code: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime
    actor: str
    application: str
    target: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "command": self.command, "arguments": self.arguments,
            "outcome": self.outcome, "summary": self.summary, "error_code": self.error_code,
            "error": self.error, "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at), "actor": self.actor,
            "application": self.application, "target": self.target,
        }


def record(conn: Connection, *, command: str, arguments: str | None, outcome: str,
           started_at: datetime, target: str, summary: str | None = None,
           error_code: str | None = None, error: str | None = None) -> None:
    conn.execute(insert(history).values(
        command=command, arguments=arguments, outcome=outcome, summary=summary,
        error_code=error_code, error=error, started_at=started_at, finished_at=now(),
        actor=whoami(), application=f"workspaces {__version__}", target=target,
    ))


def scrub_targets(conn: Connection) -> None:
    """Rows written before every target went through `logs.shown_url` kept a password given
    in the URL's query (and showed `user:***@`): they are rewritten as it shows them now."""
    for (target,) in conn.execute(select(history.c.target).distinct()).all():
        shown = _shown(target)
        if shown != target:
            conn.execute(update(history).where(history.c.target == target)
                         .values(target=shown))


def _shown(target: str) -> str:
    try:
        return shown_url(target).read
    except ValueError:  # no URL at all: nothing of it can be told safely
        return REDACTED


def read_history(conn: Connection, *, limit: int) -> list[Event]:
    """The newest `limit` events, oldest first; none when no command has written yet."""
    if not inspect(conn).has_table(HISTORY_TABLE):
        return []
    newest = select(history).order_by(history.c.seq.desc()).limit(limit).subquery()
    rows = conn.execute(select(newest).order_by(newest.c.seq)).mappings()
    # Shown as they would be stored now, also before a writing command has scrubbed them.
    return [Event(**{**r, "target": _shown(r["target"])}) for r in rows]


def now() -> datetime:
    return datetime.now(UTC)


def exists(conn: Connection) -> bool:
    return inspect(conn).has_table(LEDGER_TABLE)


def ensure(conn: Connection, *, ledger_too: bool = True) -> None:
    """Create the history table and (unless `ledger_too` is off: `execute` runs any script, on
    databases that may predate the ledger) the ledger, if missing; never from `status`."""
    tables = [history, ledger] if ledger_too else [history]
    ledger_metadata.create_all(conn, tables=tables, checkfirst=True)


def read(conn: Connection) -> list[Entry]:
    rows = conn.execute(select(ledger).order_by(ledger.c.seq)).mappings()
    return [
        Entry(
            seq=r["seq"], migration_id=r["migration_id"], action=r["action"],
            outcome=r["outcome"], checksum=r["checksum"], started_at=r["started_at"],
            finished_at=r["finished_at"], rolled_back_at=r["rolled_back_at"],
            duration_ms=r["duration_ms"], error=r["error"], note=r["note"],
            applied_by=r["applied_by"],
        )
        for r in rows
    ]


def latest_by_migration(entries: list[Entry]) -> dict[str, Entry]:
    latest: dict[str, Entry] = {}
    for entry in entries:
        latest[entry.migration_id] = entry
    return latest


def append(
    conn: Connection,
    *,
    migration_id: str,
    action: str,
    outcome: str,
    checksum: str,
    started_at: datetime,
    error: str | None = None,
    note: str | None = None,
) -> None:
    finished = now()
    conn.execute(
        insert(ledger).values(
            migration_id=migration_id,
            action=action,
            outcome=outcome,
            checksum=checksum,
            started_at=started_at,
            finished_at=None if outcome == FAILED else finished,
            rolled_back_at=finished if outcome == ROLLED_BACK else None,
            duration_ms=int((finished - started_at).total_seconds() * 1000),
            error=error,
            note=note,
            applied_by=whoami(),
            hostname=socket.gethostname() or platform.node(),
            tool_version=__version__,
        )
    )
