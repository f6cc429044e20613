"""The ledger: one row per migration attempt or decision, appended and never deleted.

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
)

from workspaces import __version__
from workspaces.db import whoami

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

APPLIED, FAILED, ROLLED_BACK = "applied", "failed", "rolled_back"


@dataclass(frozen=True)
class Entry:
    seq: int
    migration_id: str
    action: str
    outcome: str
    checksum: str
    started_at: datetime
    finished_at: datetime | None
    rolled_back_at: datetime | None
    duration_ms: int | None
    error: str | None
    note: str | None
    applied_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "action": self.action,
            "outcome": self.outcome,
            "checksum": self.checksum,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "rolled_back_at": _iso(self.rolled_back_at),
            "duration_ms": self.duration_ms,
            "error": self.error,
            "note": self.note,
            "applied_by": self.applied_by,
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; we always store UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


def exists(conn: Connection) -> bool:
    return inspect(conn).has_table(LEDGER_TABLE)


def ensure(conn: Connection) -> None:
    """Create the ledger table if missing (deploy, baseline and resolve only; never status)."""
    ledger_metadata.create_all(conn, checkfirst=True)


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
