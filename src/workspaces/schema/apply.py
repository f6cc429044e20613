"""Deploy, rollback and execute: the commands that run migrations or SQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from alembic.operations import ops as alembic_ops
from sqlalchemy import Connection, Engine, func, literal_column, select, text
from sqlalchemy.exc import SQLAlchemyError

from workspaces.errors import Exit, SchemaError, SchemaOutOfDate
from workspaces.schema import ledger
from workspaces.schema.core import Result, ToolkitCore
from workspaces.schema.errors import translate
from workspaces.schema.expected import downgrade_operations
from workspaces.schema.orphans import count
from workspaces.schema.revisions import Migration
from workspaces.schema.runner import run_migration
from workspaces.schema.status import (
    PENDING,
    Report,
    applied_model,
    describe_keys,
    model_through,
    objects_missing,
)
from workspaces.schema.verified import remember

if TYPE_CHECKING:
    from workspaces.settings import Pooling


class Applying(ToolkitCore):
    """Changing the schema forwards and back: deploy, rollback, and running an SQL script."""

    def check_for_serving(self, *, migrate: bool, pooling: Pooling = "session") -> Report:
        """The schema check before the server starts: pending migrations are applied when
        `migrate` is asked for, and always on SQLite (the embedded default: nobody else shares
        it); the report says whether anything is still wrong (see `serving_refusal`). A server
        configured for direct connections refuses a transaction pooler first."""
        if pooling == "session":
            self.refuse_transaction_pooler(serving=True)
        report = self.status()
        embedded = self.url.get_backend_name() == "sqlite"
        if report.exit_code == Exit.PENDING and (migrate or embedded):
            for line in self.deploy().lines:
                self.say(line)
            report = self.status()
        return report

    def deploy(self, *, to: str | None = None) -> Result:
        result = Result(Exit.OK)
        if to is not None:
            self.migrations.get(to)
        with self._writer("deploying migrations", "deploy",
                          f"--to {to}" if to else None) as writing:
            engine = writing.engine
            with engine.connect() as conn:
                report = self._analyze(conn)
            self._refuse_if_blocked(report, "deploy")
            for problem in report.problems:
                if problem.code in ("no_ledger", "objects_present", "partial"):
                    # Running it would fail at the first object that exists, and record a
                    # failure for what is only a half-done job.
                    raise SchemaError(
                        "deploy_refused", f"Refusing to deploy: {problem.message}",
                        fix=problem.fix, exit_code=max(Exit.PENDING, problem.exit_code),
                    )
            targets = report.in_state(PENDING)
            if to is not None:
                limit = self.migrations.position(to)
                targets = [s for s in targets if self.migrations.position(s.migration.id) <= limit]
            applied: list[str] = []
            for state in targets:
                if self._apply(engine, state.migration):
                    applied.append(state.migration.id)
                    result.lines.append(f"applied {state.migration.id}")
            if not applied:
                result.lines.append("Nothing to apply: every migration is already applied.")
            with engine.begin() as conn:
                after = self._analyze(conn)
                if after.exit_code == Exit.OK and not after.differences:
                    # Exactly as the migrations make it: `db status` may answer quickly
                    # until the catalogue or the applied set changes (schema/verified.py).
                    # Only a shortcut: failing to record it never fails the deploy.
                    try:
                        with conn.begin_nested():
                            remember(conn, after, applied_model(after, self.migrations).tables)
                    except SQLAlchemyError as exc:
                        why = translate(exc, doing="recording the verification").message
                        self.say(f"note: the verification was not recorded ({why}); "
                                 "`db status` will compare the schema in full")
            writing.summary = (f"applied {', '.join(applied)}" if applied
                               else "nothing to apply")
        result.data = {"applied": applied, "status": after.as_dict()}
        drift = [p for p in after.problems if p.exit_code == Exit.DRIFT]
        if drift:
            result.exit_code = Exit.DRIFT
            result.lines += [f"drift: {p.message}" for p in drift]
            result.lines.append("The live schema still differs.")
            result.next = ["workspaces db repair"]
        else:
            pending = len(after.in_state(PENDING))
            result.lines.append(
                f"Schema verified: {len(after.applied_ids)} applied"
                + (f", {pending} pending (stopped at --to {to})." if pending else ", up to date.")
            )
        return result

    def _apply(self, engine: Engine, migration: Migration) -> bool:
        """Apply one migration in its own transaction with its ledger row; False if done already."""
        started = ledger.now()
        try:
            with engine.begin() as conn:
                latest = ledger.latest_by_migration(ledger.read(conn)).get(migration.id)
                if latest is not None and latest.outcome == ledger.APPLIED:
                    return False  # another runner applied it meanwhile (SQLite path)
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL lock_timeout = '{int(self.lock_timeout)}s'"))
                run_migration(conn, migration, "upgrade")
                ledger.append(conn, migration_id=migration.id, action="deploy",
                              outcome=ledger.APPLIED, checksum=migration.checksum,
                              started_at=started)
            return True
        except Exception as exc:
            error = (translate(exc, doing="deploy", migration_id=migration.id)
                     if isinstance(exc, SQLAlchemyError)
                     else SchemaError("migration_error",
                                      f"migration {migration.id} failed: {exc!r}",
                                      fix="fix the revision file, then resolve and redeploy"))
            self._record_failure(engine, migration, started, error)
            cause = f" To fix the cause: {error.fix.rstrip('.')}." if error.fix else ""
            raise error.restated(
                f"{error.message} Nothing of it was applied; the attempt is recorded as "
                f"failed.{cause}",
                fix=f"workspaces db resolve --rolled-back {migration.id}  # once the cause is "
                    "fixed; deploy then retries it",
                exit_code=Exit.FAILED,
            ) from exc

    def _record_failure(
        self, engine: Engine, migration: Migration, started: datetime, error: SchemaError
    ) -> None:
        try:
            with engine.begin() as conn:
                ledger.append(conn, migration_id=migration.id, action="deploy",
                              outcome=ledger.FAILED, checksum=migration.checksum,
                              started_at=started,
                              error=f"{error.message} {error.detail or ''}".strip())
        except SQLAlchemyError as exc:
            error.detail = f"{error.detail}; could not record the failure: {exc}"

    def rollback(self, migration_id: str | None, *, confirm: Callable[[list[str]], bool]) -> Result:
        with self._writer("rolling back", "rollback", migration_id) as writing:
            engine = writing.engine
            with engine.connect() as conn:
                report = self._analyze(conn, check_live=False)
                self._refuse_if_blocked(report, "rollback")
                applied = [s.migration for s in report.migrations if s.state == ledger.APPLIED]
                if not applied:
                    raise SchemaError("nothing_applied", "No migration is applied; nothing to "
                                      "roll back.")
                if migration_id is None:
                    targets = [applied[-1]]
                else:
                    target = self.migrations.get(migration_id)
                    if target not in applied:
                        raise SchemaError("not_applied", f"Migration {migration_id} is not "
                                          "applied.", fix="workspaces db status  # lists them")
                    targets = list(reversed(applied[applied.index(target):]))
                plan = self._rollback_plan(conn, report, targets)
            if not confirm(plan):
                writing.cancelled = True
                return Result(Exit.ERROR, ["Rollback cancelled; nothing changed."],
                              {"cancelled": True, "plan": plan})
            lines: list[str] = []
            for migration in targets:
                started = ledger.now()
                try:
                    with engine.begin() as conn:
                        run_migration(conn, migration, "downgrade")
                        ledger.append(conn, migration_id=migration.id, action="rollback",
                                      outcome=ledger.ROLLED_BACK, checksum=migration.checksum,
                                      started_at=started)
                except SQLAlchemyError as exc:
                    error = translate(exc, doing="rollback", migration_id=migration.id)
                    done = [m.id for m in targets[:targets.index(migration)]]
                    before = (f" Rolled back before it (each in its own transaction, and "
                              f"pending now): {', '.join(done)}." if done else "")
                    raise error.restated(
                        f"Rolling back {migration.id} failed; it is still applied and "
                        f"unchanged.{before}",
                        fix="workspaces db status  # what is applied and pending now") from exc
                lines.append(f"rolled back {migration.id}")
            writing.summary = f"rolled back {', '.join(m.id for m in targets)}"
        return Result(Exit.OK, lines, {"rolled_back": [m.id for m in targets], "plan": plan},
                      next=["workspaces db deploy  # applies them again"])

    def _rollback_plan(
        self, conn: Connection, report: Report, targets: list[Migration]
    ) -> list[str]:
        plan: list[str] = []
        for migration in targets:
            missing = objects_missing(conn, model_through(self.migrations, migration.id),
                                      migration.id)
            if missing:
                raise SchemaError(
                    "objects_missing",
                    f"Cannot roll back {migration.id}: its {describe_keys(missing)} already "
                    "missing, so its down step would fail.",
                    fix="workspaces db repair  # recreates them; then roll back\n"
                        f"workspaces db resolve --rolled-back {migration.id}  # everything it "
                        "made is gone",
                    exit_code=Exit.DRIFT,
                )
            for operation in downgrade_operations(migration):
                plan.append(f"{migration.id}: {describe_operation(conn, operation)}")
        others = _other_sessions(conn)
        if others:
            plan.append(f"warning: {count(len(others), 'other session')} connected to this "
                        f"database ({', '.join(sorted(set(others)))}): an application using "
                        "what this drops will fail until it is deployed again; stop it first")
        return plan

    def execute(self, script: str) -> Result:
        import sqlparse  # here: a server process never runs a script

        statements: list[str] = []
        skipped = 0
        for statement in sqlparse.split(script):
            bare = sqlparse.format(statement, strip_comments=True).strip().rstrip(";").strip()
            if _TRANSACTION_CONTROL.fullmatch(bare):
                skipped += 1  # the whole script already runs in one transaction
            elif bare:
                statements.append(statement)
        if not statements:
            raise SchemaError("empty_script", "The SQL script has no statements.")
        with (self._writer("running the script", "execute",
                           f"{len(statements)} statement(s)", schema_change=False) as writing,
              writing.engine.begin() as conn):
            for number, statement in enumerate(statements, start=1):
                try:
                    conn.exec_driver_sql(statement)
                except SQLAlchemyError as exc:
                    error = translate(exc, doing="the script")
                    first = " ".join(statement.split())[:120]
                    raise error.restated(
                        f"Statement {number} of {len(statements)} failed; the transaction was "
                        "rolled back and nothing changed.", code="statement_failed",
                        detail=f"{error.detail} -- statement {number}: {first}",
                    ) from exc
            writing.summary = f"ran {len(statements)} statement(s)"
        lines = [f"Ran {len(statements)} statement(s) in one transaction."]
        if skipped:
            lines.append(f"Skipped {skipped} BEGIN/COMMIT statement(s): the script runs in one "
                         "transaction of its own.")
        return Result(Exit.OK, lines, {"statements": len(statements), "skipped": skipped})


def _other_sessions(conn: Connection) -> list[str]:
    """PostgreSQL: the application names of the database's other sessions (not this tool's)."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.execute(text(
        "SELECT coalesce(nullif(application_name, ''), 'unnamed client') FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND application_name NOT LIKE 'workspaces db %'"))
    return [str(name) for (name,) in rows]


_VERBS = {"Create": "creates", "Add": "adds", "Drop": "drops", "Alter": "changes",
          "Rename": "renames", "Bulk": "inserts rows into", "Execute": "runs"}


def describe_operation(conn: Connection, operation: alembic_ops.MigrateOperation) -> str:
    """A step of a down migration in words, with the rows it destroys."""
    table = getattr(operation, "table_name", None)
    if isinstance(operation, alembic_ops.DropTableOp | alembic_ops.DropColumnOp):
        quote = conn.dialect.identifier_preparer.quote
        rows = text(quote(str(table)))
        if isinstance(operation, alembic_ops.DropTableOp):
            total = conn.execute(select(func.count()).select_from(rows)).scalar_one()
            return f"drops table {table} ({count(total, 'row')})"
        # The values it destroys: a row whose column is NULL loses nothing.
        values = conn.execute(select(func.count(literal_column(quote(operation.column_name))))
                              .select_from(rows)).scalar_one()
        return (f"drops column {table}.{operation.column_name} (its values in "
                f"{count(values, 'row')})")
    if isinstance(operation, alembic_ops.ExecuteSQLOp):
        sql = " ".join(str(operation.sqltext).split())
        return f"runs SQL: {sql[:80]}{'...' if len(sql) > 80 else ''}"
    words = re.findall(r"[A-Z][a-z]*", type(operation).__name__.removesuffix("Op"))
    verb = _VERBS.get(words[0], words[0].lower()) if words else "runs"
    noun = " ".join(w.lower() for w in words[1:])
    table = table or getattr(operation, "source_table", None)
    name = (getattr(operation, "constraint_name", None) or getattr(operation, "index_name", None)
            or getattr(operation, "column_name", None))
    column = getattr(getattr(operation, "column", None), "name", None)
    what = " ".join(str(part) for part in (noun, name or column) if part)
    return f"{verb} {what} on {table}" if table else f"{verb} {what}".rstrip()


_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|COMMIT|END|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?", re.IGNORECASE
)


def serving_refusal(report: Report) -> SchemaOutOfDate:
    """Why the server will not start on this schema, with the fix for the worst problem."""
    worst = max(report.problems, key=lambda p: p.exit_code)
    fix = ("workspaces db deploy\nworkspaces serve --migrate  # applies them as it starts"
           if worst.exit_code == Exit.PENDING else worst.fix)
    return SchemaOutOfDate("Refusing to start: the database schema does not match this code.",
                           fix=f"{fix}\nworkspaces db status  # explains each problem",
                           exit_code=report.exit_code)
