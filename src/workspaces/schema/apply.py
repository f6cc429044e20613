"""Deploy, rollback and execute: the commands that run migrations or SQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import sqlparse
from alembic.operations import ops as alembic_ops
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from workspaces.errors import Exit, SchemaError, SchemaOutOfDate
from workspaces.schema import ledger
from workspaces.schema.core import Result, ToolkitCore, _keys
from workspaces.schema.errors import translate
from workspaces.schema.expected import downgrade_operations
from workspaces.schema.revisions import Migration
from workspaces.schema.runner import run_migration
from workspaces.schema.status import (
    PENDING,
    Report,
    model_through,
    objects_missing,
)


class Applying(ToolkitCore):
    """Changing the schema forwards and back: deploy, rollback, and running an SQL script."""

    def check_for_serving(self, *, migrate: bool) -> Report:
        """The schema check before the server starts: pending migrations are applied when
        `migrate` is asked for, and always on SQLite (the embedded default: nobody else shares
        it); the report says whether anything is still wrong (see `serving_refusal`)."""
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
        with self._writer("deploying migrations") as engine:
            with engine.connect() as conn:
                report = self._analyze(conn)
            self._refuse_if_blocked(report, "deploy")
            for problem in report.problems:
                if problem.code in ("no_ledger", "objects_present"):
                    raise SchemaError(
                        "deploy_refused", f"Refusing to deploy: {problem.message}",
                        fix=problem.fix, exit_code=Exit.PENDING,
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
            with engine.connect() as conn:
                after = self._analyze(conn)
        result.data = {"applied": applied, "status": after.as_dict()}
        drift = [p for p in after.problems if p.exit_code == Exit.DRIFT]
        if drift:
            result.exit_code = Exit.DRIFT
            result.lines += [f"drift: {p.message}" for p in drift]
            result.lines.append("The live schema still differs; run `workspaces db repair`.")
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
            raise error.restated(
                f"{error.message} Nothing of it was applied; the attempt is recorded as failed.",
                fix=f"{error.fix}; then `workspaces db resolve --rolled-back {migration.id}` "
                    "and `workspaces db deploy`",
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
        with self._writer("rolling back") as engine:
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
                                          "applied.", fix="`workspaces db status` lists them.")
                    targets = list(reversed(applied[applied.index(target):]))
                plan = self._rollback_plan(conn, report, targets)
            if not confirm(plan):
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
                    raise error.restated(f"Rolling back {migration.id} failed; it is still "
                                         "applied and unchanged.") from exc
                lines.append(f"rolled back {migration.id}")
        lines.append("Run `workspaces db deploy` to apply them again.")
        return Result(Exit.OK, lines, {"rolled_back": [m.id for m in targets], "plan": plan})

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
                    f"Cannot roll back {migration.id}: its {_keys(missing)} already missing, "
                    "so its down step would fail.",
                    fix=f"If all it made is gone, `workspaces db resolve --rolled-back "
                        f"{migration.id}`; otherwise `workspaces db repair` first.",
                    exit_code=Exit.DRIFT,
                )
            for operation in downgrade_operations(migration):
                plan.append(f"{migration.id}: {self._describe_down(conn, operation)}")
        return plan

    @staticmethod
    def _describe_down(conn: Connection, operation: alembic_ops.MigrateOperation) -> str:
        table = getattr(operation, "table_name", None)
        if isinstance(operation, alembic_ops.DropTableOp | alembic_ops.DropColumnOp):
            rows = conn.execute(select(func.count()).select_from(text(
                conn.dialect.identifier_preparer.quote(str(table))))).scalar_one()
            if isinstance(operation, alembic_ops.DropTableOp):
                return f"drops table {table}: {rows:,} rows"
            return f"drops column {table}.{operation.column_name}: {rows:,} rows"
        if isinstance(operation, alembic_ops.DropIndexOp):
            return f"drops index {operation.index_name} on {table}"
        if isinstance(operation, alembic_ops.DropConstraintOp):
            return f"drops constraint {operation.constraint_name} on {table}"
        return f"runs {type(operation).__name__.removesuffix('Op')} on {table or 'the database'}"

    def execute(self, script: str) -> Result:
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
        with (self._engine_for("running the script", schema_change=False) as engine,
              engine.begin() as conn):
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
        lines = [f"Ran {len(statements)} statement(s) in one transaction."]
        if skipped:
            lines.append(f"Skipped {skipped} BEGIN/COMMIT statement(s): the script runs in one "
                         "transaction of its own.")
        return Result(Exit.OK, lines, {"statements": len(statements), "skipped": skipped})


_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|COMMIT|END|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?", re.IGNORECASE
)


def serving_refusal(report: Report) -> SchemaOutOfDate:
    """Why the server will not start on this schema, with the fix for the worst problem."""
    worst = max(report.problems, key=lambda p: p.exit_code)
    fix = ("workspaces db deploy (or start with --migrate)"
           if worst.exit_code == Exit.PENDING else worst.fix)
    return SchemaOutOfDate("Refusing to start: the database schema does not match this code.",
                           fix=f"{fix}; `workspaces db status` explains each problem",
                           exit_code=report.exit_code)
