"""The schema toolkit's shared core: the Result every command returns, engines, the deploy
lock, the status report, and the refusal to act on blocked history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from workspaces.db import create_sync_engine, display_url, sqlite_path, whoami
from workspaces.errors import Exit, SchemaError
from workspaces.schema import ledger
from workspaces.schema.errors import translate
from workspaces.schema.lock import held_by, schema_lock
from workspaces.schema.pooler import refusal, transaction_pooler
from workspaces.schema.revisions import MigrationSet
from workspaces.schema.status import (
    Report,
    analyze,
)
from workspaces.schema.verified import quick_status


@dataclass
class Result:
    """What a command did: its exit code, lines for people, data for machines, and the next
    commands to run (alternatives, each one line: `workspaces ...  # when`)."""

    exit_code: Exit
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    next: list[str] = field(default_factory=list)


@dataclass
class Writing:
    """A command holding the deploy lock: its engine, and what its history row will say."""

    engine: Engine
    summary: str | None = None
    cancelled: bool = False


class ToolkitCore:
    """What every command shares: the database, the migrations, engines with their lifetime
    and error translation, the deploy lock, and the status report."""

    def __init__(
        self,
        url: URL,
        migrations: MigrationSet,
        *,
        say: Callable[[str], None] = lambda _line: None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.migrations = migrations
        self.say = say
        self.lock_timeout = lock_timeout

    def _engine(self, *, read_only: bool = False, schema_change: bool = True) -> Engine:
        return create_sync_engine(
            self.url,
            read_only=read_only,
            sqlite_immediate=not read_only,
            busy_timeout=self.lock_timeout,
            application_name=f"workspaces db {whoami()}",
            sqlite_foreign_keys=not schema_change,
        )

    @contextmanager
    def _engine_for(self, doing: str, *, read_only: bool = False,
                    schema_change: bool = True) -> Iterator[Engine]:
        """An engine for one command, disposed after it; a database error on the way out is
        translated into a SchemaError saying what we were `doing`."""
        engine = self._engine(read_only=read_only, schema_change=schema_change)
        try:
            yield engine
        except SQLAlchemyError as exc:
            raise translate(exc, doing=doing) from exc
        finally:
            engine.dispose()

    @contextmanager
    def _writer(self, doing: str, command: str, arguments: str | None = None, *,
                schema_change: bool = True) -> Iterator[Writing]:
        """An engine holding the deploy lock, with the ledger in place; how the command ends
        (done, cancelled, or its error, refusals included) is added to the history."""
        self.refuse_transaction_pooler(serving=False)
        started = ledger.now()
        with (self._engine_for(doing, schema_change=schema_change) as engine,
              schema_lock(engine, timeout=self.lock_timeout, say=self.say)):
            with engine.begin() as conn:
                ledger.ensure(conn, ledger_too=schema_change)
            writing = Writing(engine)
            try:
                yield writing
            except (SchemaError, SQLAlchemyError) as exc:
                error = exc if isinstance(exc, SchemaError) else translate(exc, doing=doing)
                self._record(engine, command, arguments, started, ledger.ERROR,
                             error_code=error.code, error=error.message)
                raise
            self._record(engine, command, arguments, started,
                         ledger.CANCELLED if writing.cancelled else ledger.OK,
                         summary=writing.summary)

    def refuse_transaction_pooler(self, *, serving: bool) -> None:
        """Stop, before anything is touched, when the database is reached through a pooler
        that would move a session's statements between server connections."""
        evidence = transaction_pooler(self.url)
        if evidence:
            raise refusal(evidence, serving=serving)

    def _record(self, engine: Engine, command: str, arguments: str | None,
                started: datetime, outcome: str, **details: str | None) -> None:
        """One history row in a transaction of its own; a database that cannot take it (it
        went away) costs the row, never the command's own outcome or error."""
        try:
            with engine.begin() as conn:
                ledger.record(conn, command=command, arguments=arguments, outcome=outcome,
                              started_at=started, target=display_url(self.url), **details)
        except SQLAlchemyError as exc:
            self.say(f"warning: could not add this command to the history: "
                     f"{type(exc).__name__}")

    def _analyze(self, conn: Connection | None, *, check_live: bool = True) -> Report:
        return analyze(conn, self.migrations, database=display_url(self.url),
                       check_live=check_live)

    def _refuse_if_blocked(self, report: Report, command: str) -> None:
        """Deploy, repair and rollback stop on failed, diverged or modified history."""
        blocking = report.blocking()
        if blocking:
            worst = max(blocking, key=lambda p: p.exit_code)
            raise SchemaError(
                f"{command}_refused",
                f"Refusing to {command}: {worst.message}",
                fix=worst.fix,
                exit_code=worst.exit_code,
                detail="; ".join(p.message for p in blocking[1:]) or None,
            )

    def status(self, *, quick: bool = True) -> Report:
        """The full report; `quick`: first the quick status (schema/verified.py), which
        answers a schema verified by deploy and unchanged since without comparing it again
        (what /readyz and /metrics ask every few seconds)."""
        if quick:
            report = quick_status(self.url.render_as_string(hide_password=False),
                                  self.migrations.versions_dir)
            if report is not None:
                return report
        path = sqlite_path(self.url)
        if path is not None and not path.exists():
            if not path.parent.is_dir():
                raise SchemaError(
                    "sqlite_open_failed",
                    f"The folder {path.parent} of the SQLite database does not exist.",
                    fix="Create the folder, or fix the database URL.",
                )
            return analyze(None, self.migrations, database=display_url(self.url))
        with (self._engine_for("reading the schema status", read_only=True,
                               schema_change=False) as engine, engine.connect() as conn):
            return self._analyze(conn)

    def deploy_holder(self) -> str | None:
        """Who holds the deploy lock now: a schema change is in progress. None when nobody does
        (always on SQLite, which has no such lock)."""
        if self.url.get_backend_name() != "postgresql":
            return None
        with (self._engine_for("reading the deploy lock", read_only=True,
                               schema_change=False) as engine, engine.connect() as conn):
            return held_by(conn)

    def history(self, *, limit: int = 20) -> list[ledger.Event]:
        """What the toolkit's writing commands did here, newest `limit`, oldest first."""
        path = sqlite_path(self.url)
        if path is not None and not path.exists():
            return []
        with (self._engine_for("reading the history", read_only=True,
                               schema_change=False) as engine, engine.connect() as conn):
            return ledger.read_history(conn, limit=limit)
