"""What `db status` reports, as plain data: ledger entries, migration states, problems.

Nothing here imports SQLAlchemy or Alembic, so that the quick status (schema/verified.py) can
build the same report without paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workspaces.errors import Exit, commands

if TYPE_CHECKING:
    from workspaces.schema.expected import ObjectKey
    from workspaces.schema.live import Difference
    from workspaces.schema.revisions import Migration

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
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "rolled_back_at": iso(self.rolled_back_at),
            "duration_ms": self.duration_ms,
            "error": self.error,
            "note": self.note,
            "applied_by": self.applied_by,
        }


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; we always store UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


PENDING = "pending"


def describe_keys(keys: list[ObjectKey]) -> str:
    """Objects for a sentence; a table stands for its own columns, indexes and keys."""
    tables = {k.table for k in keys if k.kind == "table"}
    return ", ".join(k.describe() for k in keys if k.kind == "table" or k.table not in tables)


@dataclass(frozen=True)
class Problem:
    code: str
    exit_code: Exit
    message: str
    fix: str | None = None
    migration_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "exit_code": int(self.exit_code),
            "migration": self.migration_id,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class MigrationState:
    migration: Migration
    state: str  # applied | pending | failed
    latest: Entry | None
    checksum_ok: bool = True
    creates: list[str] = field(default_factory=list)
    # pending only: (present, missing) when some of what it creates exists already
    partial: tuple[list[ObjectKey], list[ObjectKey]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.migration.id,
            "title": self.migration.title,
            "state": self.state,
            "checksum_ok": self.checksum_ok,
            "creates_tables": self.creates,
            "partial": None if self.partial is None else {
                "present": [k.describe() for k in self.partial[0]],
                "missing": [k.describe() for k in self.partial[1]]},
            "last": self.latest.as_dict() if self.latest else None,
        }


@dataclass
class Report:
    database: str
    server: str
    ledger_exists: bool
    migrations: list[MigrationState]
    unknown: list[Entry] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # PostgreSQL: who holds the deploy lock while this was read (a schema change in progress)
    in_progress: str | None = None
    # Tables and columns of this code's schema (every migration it has) that the database
    # lacks: a request that touches one fails, so this code cannot serve here.
    absent: list[ObjectKey] = field(default_factory=list)

    @property
    def exit_code(self) -> Exit:
        return max((p.exit_code for p in self.problems), default=Exit.OK)

    def in_state(self, state: str) -> list[MigrationState]:
        return [m for m in self.migrations if m.state == state]

    @property
    def applied_ids(self) -> list[str]:
        return [m.migration.id for m in self.migrations if m.state == APPLIED]

    @property
    def next_step(self) -> str | None:
        """The one command to run first: the first command of the first fix that `db status`
        prints (its first `next:` line; advice is a `hint:`, never this). The log, /readyz,
        the 503 body and the CLI all name the fix from here."""
        return next((commands(p.fix)[0] for p in self.problems if commands(p.fix)), None)

    @property
    def serves(self) -> bool:
        """Readiness: this code can serve its requests on this database, perhaps degraded. Only
        an absent table or column stops it; drift it runs on (an index, a constraint, the
        ledger, a checksum) does not (docs/deployment.md, "Readiness")."""
        return not self.absent

    def blocking(self) -> list[Problem]:
        """Problems that stop deploy: failed, diverged, modified."""
        return [p for p in self.problems if p.exit_code in (Exit.FAILED, Exit.DIVERGED)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "server": self.server,
            "exit_code": int(self.exit_code),
            "ledger_exists": self.ledger_exists,
            "in_progress": self.in_progress,
            "migrations": [m.as_dict() for m in self.migrations],
            "unknown_migrations": [
                {"id": e.migration_id, **e.as_dict()} for e in self.unknown
            ],
            "differences": [d.as_dict() for d in self.differences],
            "problems": [p.as_dict() for p in self.problems],
        }


