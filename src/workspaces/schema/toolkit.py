"""The schema toolkit's commands: status, deploy, resolve, verify, repair, rollback, baseline,
execute, sql and new. Each returns a Result (exit code, lines for people, data for machines)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlparse
from alembic.operations import ops as alembic_ops
from sqlalchemy import Connection, Engine, MetaData, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from workspaces.db import create_sync_engine, display_url, sqlite_path, whoami
from workspaces.errors import Exit, SchemaError, SchemaOutOfDate
from workspaces.schema import ledger
from workspaces.schema.errors import translate
from workspaces.schema.expected import ObjectKey, SchemaModel, build_model, downgrade_operations
from workspaces.schema.live import DIFFERS, EXTRA, MISSING
from workspaces.schema.lock import schema_lock
from workspaces.schema.revisions import Migration, MigrationSet
from workspaces.schema.runner import invoke_all, render_operations, render_sql, run_migration
from workspaces.schema.status import (
    PENDING,
    Report,
    analyze,
    applied_model,
    model_through,
    objects_missing,
)


@dataclass
class Result:
    exit_code: Exit
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RepairStep:
    operation: alembic_ops.MigrateOperation
    what: str
    migration_id: str


def _keys(keys: list[ObjectKey]) -> str:
    """Objects for a sentence; a table stands for its own columns, indexes and keys."""
    tables = {k.table for k in keys if k.kind == "table"}
    return ", ".join(k.describe() for k in keys if k.kind == "table" or k.table not in tables)


class Toolkit:
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
    def _writer(self, doing: str) -> Iterator[Engine]:
        """An engine holding the deploy lock, with the ledger table in place."""
        engine = self._engine()
        try:
            with schema_lock(engine, timeout=self.lock_timeout, say=self.say):
                with engine.begin() as conn:
                    ledger.ensure(conn)
                yield engine
        except DBAPIError as exc:
            raise translate(exc, doing=doing) from exc
        finally:
            engine.dispose()

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

    def status(self) -> Report:
        path = sqlite_path(self.url)
        if path is not None and not path.exists():
            if not path.parent.is_dir():
                raise SchemaError(
                    "sqlite_open_failed",
                    f"The folder {path.parent} of the SQLite database does not exist.",
                    fix="Create the folder or fix DATABASE_URL.",
                )
            return analyze(None, self.migrations, database=display_url(self.url))
        engine = self._engine(read_only=True, schema_change=False)
        try:
            with engine.connect() as conn:
                return self._analyze(conn)
        except DBAPIError as exc:
            raise translate(exc, doing="reading the schema status") from exc
        finally:
            engine.dispose()

    def verify(self) -> Result:
        report = self.status()
        drift = [d for d in report.differences if d.kind in (MISSING, DIFFERS)]
        lines = [f"{d.describe()} (migration {d.migration_id or '?'})" for d in drift]
        fixes = sorted({p.fix for p in report.problems
                        if p.exit_code == Exit.DRIFT and p.fix})
        applied = len(report.applied_ids)
        extra = [d for d in report.differences if d.kind == EXTRA]
        if extra:
            lines.append(f"note: {len(extra)} object(s) exist that no applied migration creates "
                         f"(not an error): {', '.join(d.key.describe() for d in extra)}")
        if drift:
            lines += [f"fix: {f}" for f in fixes]
            lines.append(f"Live schema differs from the {applied} applied migration(s).")
        else:
            lines.append(f"Live schema matches the {applied} applied migration(s).")
        return Result(Exit.DRIFT if drift else Exit.OK, lines, report.as_dict())

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
            raise SchemaError(
                error.code,
                f"{error.message} Nothing of it was applied; the attempt is recorded as failed.",
                fix=f"{error.fix}; then `workspaces db resolve --rolled-back {migration.id}` "
                    "and `workspaces db deploy`",
                exit_code=Exit.FAILED,
                detail=error.detail,
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

    def resolve(self, migration_id: str, *, applied: bool, force: bool = False) -> Result:
        migration = self.migrations.get(migration_id)
        with self._writer("resolving a migration") as engine, engine.begin() as conn:
            report = self._analyze(conn, check_live=False)
            state = next(s for s in report.migrations if s.migration.id == migration_id)
            if applied:
                note = self._check_resolve_applied(conn, report, state.state,
                                                   state.checksum_ok, migration_id, force)
                outcome = ledger.APPLIED
            else:
                note = self._check_resolve_rolled_back(conn, report, state.state,
                                                       migration_id, force)
                outcome = ledger.ROLLED_BACK
            ledger.append(conn, migration_id=migration_id, action="resolve",
                          outcome=outcome, checksum=migration.checksum,
                          started_at=ledger.now(), note=note)
        verb = "applied" if applied else "rolled back"
        lines = [f"Recorded {migration_id} as {verb} ({note})."]
        if not applied:
            lines.append("Run `workspaces db deploy` to apply it again.")
        return Result(Exit.OK, lines, {"migration": migration_id, "recorded": verb, "note": note})

    def _check_resolve_applied(
        self, conn: Connection, report: Report, state: str, checksum_ok: bool,
        migration_id: str, force: bool,
    ) -> str:
        if state == ledger.APPLIED and checksum_ok:
            raise SchemaError("already_applied", f"Migration {migration_id} is already applied.",
                              fix="Nothing to do; `workspaces db status` shows the state.")
        missing = objects_missing(conn, model_through(self.migrations, migration_id),
                                  migration_id)
        if missing and not force:
            raise SchemaError(
                "objects_missing",
                f"Not recording {migration_id} as applied: the database lacks "
                f"{_keys(missing)}.",
                fix=f"Create them (`workspaces db sql {migration_id}` prints the SQL) or run "
                    "`workspaces db deploy`; --force records it anyway.",
            )
        if missing:
            return f"forced; missing: {_keys(missing)}"
        if state == ledger.APPLIED:
            return "file checksum accepted; objects verified present"
        return "objects verified present"

    def _check_resolve_rolled_back(
        self, conn: Connection, report: Report, state: str, migration_id: str, force: bool
    ) -> str:
        if state == PENDING:
            raise SchemaError("not_applied", f"Migration {migration_id} is not applied or "
                              "failed; there is nothing to mark rolled back.",
                              fix="`workspaces db deploy` applies it.")
        model = model_through(self.migrations, migration_id)
        if state == ledger.APPLIED and not force:
            self._refuse_if_later_migrations_changed(report, model, migration_id)
        missing = set(objects_missing(conn, model, migration_id))
        present = [k for k in model.created_by(migration_id) if k not in missing]
        if present and not force:
            raise SchemaError(
                "objects_present",
                f"Not recording {migration_id} as rolled back: the database still has "
                f"{_keys(present)}.",
                fix=f"Remove them first, or use `workspaces db rollback {migration_id}` to run "
                    "its down step; --force records it anyway.",
            )
        if present:
            return f"forced; still present: {_keys(present)}"
        return ("failed attempt cleared" if state == ledger.FAILED
                else "objects verified absent")

    def _refuse_if_later_migrations_changed(
        self, report: Report, model: SchemaModel, migration_id: str
    ) -> None:
        """Re-applying X alone cannot restore what later applied migrations did to X's tables."""
        made = {k.table for k in model.created_by(migration_id) if k.kind == "table"}
        later = build_model(self.migrations).touched
        position = self.migrations.position(migration_id)
        conflicts = [
            mid for mid in report.applied_ids
            if self.migrations.position(mid) > position and later.get(mid, set()) & made
        ]
        if conflicts:
            raise SchemaError(
                "later_migrations_depend",
                f"Not recording {migration_id} as rolled back: later applied migration(s) "
                f"{', '.join(conflicts)} changed its table(s) {', '.join(sorted(made))}, and "
                "applying it again alone would not bring those changes back.",
                fix="Use `workspaces db repair`, which recreates the objects as the applied "
                    "migrations left them; --force records the rollback anyway.",
            )

    def baseline(self) -> Result:
        lines: list[str] = []
        recorded: list[str] = []
        with self._writer("baselining") as engine, engine.begin() as conn:
            if ledger.read(conn):
                raise SchemaError("ledger_exists", "The database already has a migration "
                                  "ledger; baseline is for databases that predate it.",
                                  fix="Use `workspaces db status` and `workspaces db resolve`.")
            for migration in self.migrations:
                missing = objects_missing(conn, model_through(self.migrations, migration.id),
                                          migration.id)
                if missing:
                    lines.append(f"stopped at {migration.id}: missing {_keys(missing)}")
                    break
                ledger.append(conn, migration_id=migration.id, action="baseline",
                              outcome=ledger.APPLIED, checksum=migration.checksum,
                              started_at=ledger.now(), note="objects verified present")
                recorded.append(migration.id)
                lines.append(f"recorded {migration.id} as applied (objects verified present)")
        rest = len(self.migrations) - len(recorded)
        lines.append(f"Baseline: {len(recorded)} recorded as applied, {rest} left to deploy"
                     + (" (run `workspaces db deploy`)." if rest else "."))
        return Result(Exit.OK, lines, {"recorded": recorded})

    def repair(self, *, dry_run: bool = False) -> Result:
        if dry_run:
            report = self.status()
            plan, manual = self._repair_plan(report)
            sql = render_operations([s.operation for s in plan], self.url.get_backend_name())
            lines = [sql.strip() or "-- nothing to repair", *manual]
            return Result(Exit.OK, lines, {"sql": sql, "manual": manual})
        with self._writer("repairing the schema") as engine:
            with engine.connect() as conn:
                report = self._analyze(conn)
            self._refuse_if_blocked(report, "repair")
            plan, manual = self._repair_plan(report)
            if plan:
                started = ledger.now()
                try:
                    with engine.begin() as conn:
                        invoke_all(conn, [step.operation for step in plan])
                        for mid in sorted({step.migration_id for step in plan}):
                            made = "; ".join(s.what for s in plan if s.migration_id == mid)
                            ledger.append(conn, migration_id=mid, action="repair",
                                          outcome=ledger.APPLIED,
                                          checksum=self.migrations.get(mid).checksum,
                                          started_at=started, note=f"recreated: {made}")
                except SQLAlchemyError as exc:
                    error = translate(exc, doing="repair")
                    raise SchemaError(error.code, f"{error.message} Nothing was changed.",
                                      fix=error.fix, detail=error.detail) from exc
            with engine.connect() as conn:
                after = self._analyze(conn)
        lines = [f"created {step.what}" for step in plan] or ["Nothing missing to create."]
        lines += manual
        still = [d for d in after.differences if d.kind in (MISSING, DIFFERS)]
        if still:
            lines.append(f"{len(still)} difference(s) remain; see above for the manual steps.")
        else:
            lines.append("Live schema now matches the applied migrations.")
        return Result(Exit.DRIFT if still else Exit.OK, lines,
                      {"created": [step.what for step in plan], "manual": manual,
                       "status": after.as_dict()})

    def _repair_plan(self, report: Report) -> tuple[list[RepairStep], list[str]]:
        """Alembic operations creating each missing object, tables first, foreign keys last."""
        rank = {"add_table": 0, "add_column": 1, "add_constraint": 2, "add_index": 3,
                "add_fk": 4}
        missing = [d for d in report.differences if d.kind == MISSING and d.migration_id]
        table_order = {t.name: i for i, t in enumerate(
            applied_model(report, self.migrations).to_metadata().sorted_tables)}
        missing.sort(key=lambda d: (rank.get(d.diff[0], 9), table_order.get(d.key.table, 0)))
        plan = [
            RepairStep(operation, d.key.describe(), d.migration_id)
            for d in missing
            if d.migration_id and (operation := _operation_for(d.diff)) is not None
        ]
        manual = [
            f"manual: {d.describe()} (migration {d.migration_id}); repair never rewrites an "
            "existing object: alter it by hand, then run `workspaces db verify`"
            for d in report.differences if d.kind == DIFFERS
        ]
        return plan, manual

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
                    raise SchemaError(error.code, f"Rolling back {migration.id} failed; it is "
                                      "still applied and unchanged.", fix=error.fix,
                                      detail=error.detail) from exc
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
        engine = self._engine(schema_change=False)
        try:
            with engine.begin() as conn:
                for number, statement in enumerate(statements, start=1):
                    try:
                        conn.exec_driver_sql(statement)
                    except SQLAlchemyError as exc:
                        error = translate(exc, doing="the script")
                        first = " ".join(statement.split())[:120]
                        raise SchemaError(
                            "statement_failed",
                            f"Statement {number} of {len(statements)} failed; the transaction "
                            "was rolled back and nothing changed.",
                            fix=error.fix,
                            detail=f"{error.detail} -- statement {number}: {first}",
                        ) from exc
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise translate(exc, doing="running the script") from exc
        finally:
            engine.dispose()
        lines = [f"Ran {len(statements)} statement(s) in one transaction."]
        if skipped:
            lines.append(f"Skipped {skipped} BEGIN/COMMIT statement(s): the script runs in one "
                         "transaction of its own.")
        return Result(Exit.OK, lines, {"statements": len(statements), "skipped": skipped})

    def sql(self, migration_id: str, *, down: bool = False) -> str:
        migration = self.migrations.get(migration_id)
        dialect = self.url.get_backend_name()
        start = self.migrations.position(migration_id) + (1 if down else 0)
        before = build_model(self.migrations.migrations[:start]).to_metadata()
        body = render_sql(migration, "downgrade" if down else "upgrade", dialect, before)
        then = "--rolled-back" if down else "--applied"
        return (
            f"-- {migration.id} ({'down' if down else 'up'}) for {dialect}\n"
            f"BEGIN;\n{body.strip()}\nCOMMIT;\n"
            f"-- After running it by hand, record it: workspaces db resolve {then} {migration.id}\n"
        )

    def new(self, message: str, *, empty: bool = False) -> Result:
        from alembic.autogenerate import produce_migrations, render_python_code
        from alembic.runtime.migration import MigrationContext
        from sqlalchemy.engine import make_url

        from workspaces.models import Base

        slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:48]
        if not slug:
            raise SchemaError("bad_message", "The message must contain letters or digits.")
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        revision = f"{stamp}_{slug}"
        upgrade = downgrade = "    pass"
        if not empty:
            engine = create_sync_engine(make_url("sqlite://"))
            with engine.begin() as conn:
                for migration in self.migrations:
                    run_migration(conn, migration, "upgrade")
                metadata: MetaData = Base.metadata
                context = MigrationContext.configure(
                    connection=conn, opts={"compare_type": True, "target_metadata": metadata}
                )
                script = produce_migrations(context, metadata)
            if script.upgrade_ops is None or script.upgrade_ops.is_empty():
                return Result(Exit.OK, ["Models match the head schema; no revision written "
                                        "(use --empty for a hand-written one)."], {})
            upgrade = _indent(render_python_code(script.upgrade_ops))
            downgrade = _indent(render_python_code(script.downgrade_ops))  # type: ignore[arg-type]
        head = self.migrations.head
        path = self.migrations.versions_dir / f"{revision}.py"
        path.write_text(_REVISION_TEMPLATE.format(
            title=message.strip(), revision=revision,
            down=repr(head.id if head else None), created=stamp,
            down_doc=head.id if head else "", upgrade=upgrade, downgrade=downgrade,
        ))
        return Result(Exit.OK, [f"Wrote {path}", "Review it, then `workspaces db deploy`."],
                      {"revision": revision, "path": str(path)})


_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|COMMIT|END|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?", re.IGNORECASE
)


def _indent(code: str) -> str:
    kept = "\n".join(line for line in code.splitlines() if "# ###" not in line)
    return textwrap.indent(textwrap.dedent(kept).strip("\n"), "    ") or "    pass"


def _operation_for(diff: Any) -> alembic_ops.MigrateOperation | None:
    kind = diff[0]
    if kind == "add_table":
        return alembic_ops.CreateTableOp.from_table(diff[1])
    if kind == "add_column":
        return alembic_ops.AddColumnOp.from_column_and_tablename(diff[1], diff[2], diff[3])
    if kind == "add_index":
        return alembic_ops.CreateIndexOp.from_index(diff[1])
    if kind in ("add_constraint", "add_fk"):
        return alembic_ops.AddConstraintOp.from_constraint(diff[1])
    return None


_REVISION_TEMPLATE = '''"""{title}

Revision ID: {revision}
Revises: {down_doc}
Create Date: {created}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def serving_refusal(report: Report) -> SchemaOutOfDate:
    """Why the server will not start on this schema, with the fix for the worst problem."""
    worst = max(report.problems, key=lambda p: p.exit_code)
    fix = ("workspaces db deploy (or start with --migrate)"
           if worst.exit_code == Exit.PENDING else worst.fix)
    return SchemaOutOfDate("Refusing to start: the database schema does not match this code.",
                           fix=f"{fix}; `workspaces db status` explains each problem",
                           exit_code=report.exit_code)
