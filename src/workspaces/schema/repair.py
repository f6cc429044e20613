"""Verify and repair: the live schema against what the applied migrations should have made."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alembic.operations import ops as alembic_ops
from sqlalchemy import Connection, Engine, MetaData
from sqlalchemy.exc import SQLAlchemyError

from workspaces.errors import Exit, SchemaError
from workspaces.schema import ledger
from workspaces.schema.choices import Orphans
from workspaces.schema.core import Result, ToolkitCore
from workspaces.schema.errors import translate
from workspaces.schema.expected import SchemaModel, operations
from workspaces.schema.live import DIFFERS, EXTRA, MISSING, Difference, compare
from workspaces.schema.orphans import Settled, Violation, add_not_valid, not_valid, settle
from workspaces.schema.orphans import check as check_rows
from workspaces.schema.runner import invoke_all, render_operations
from workspaces.schema.status import (
    Report,
    applied_model,
    describe_keys,
    model_through,
)


@dataclass(frozen=True)
class RepairStep:
    operation: alembic_ops.MigrateOperation
    what: str
    migration_id: str
    diff: Any  # Alembic's comparison entry it answers


class Repairing(ToolkitCore):
    """Comparing the live schema with the applied migrations, and recreating what is missing."""

    def verify(self) -> Result:
        report = self.status()
        drift = [d for d in report.differences if d.kind in (MISSING, DIFFERS)]
        lines = [f"{d.describe()} (migration {d.migration_id or '?'})" for d in drift]
        steps = list(dict.fromkeys(line for p in report.problems
                                   if p.exit_code == Exit.DRIFT and p.fix
                                   for line in p.fix.splitlines()))
        applied = len(report.applied_ids)
        extra = [d for d in report.differences if d.kind == EXTRA]
        if extra:
            lines.append(f"note: {len(extra)} object(s) exist that no applied migration creates "
                         f"(not an error): {', '.join(d.key.describe() for d in extra)}")
        unchecked = self._not_valid() if report.ledger_exists else []
        for table, name in unchecked:
            lines.append(f"note: constraint {name} on {table} is NOT VALID: rows added before "
                         "it may break it. Fix or delete them, then run: ALTER TABLE "
                         f"{table} VALIDATE CONSTRAINT {name};")
        # A pending migration partly applied is drift too: deploy would stop at what exists.
        partial = [p.message for p in report.problems if p.code == "partial"]
        lines += partial
        if drift:
            lines.append(f"Live schema differs from the {applied} applied migration(s).")
        elif partial:
            lines.append(f"Live schema matches the {applied} applied migration(s), but a "
                         "pending one is partly applied.")
        else:
            lines.append(f"Live schema matches the {applied} applied migration(s).")
        data = {**report.as_dict(), "not_valid": [{"table": t, "constraint": c}
                                                  for t, c in unchecked]}
        return Result(Exit.DRIFT if drift or partial else Exit.OK, lines, data, next=steps)

    def _not_valid(self) -> list[tuple[str, str]]:
        if self.url.get_backend_name() != "postgresql":
            return []
        with (self._engine_for("listing unvalidated constraints", read_only=True,
                               schema_change=False) as engine, engine.connect() as conn):
            return not_valid(conn)

    def repair(self, *, dry_run: bool = False, orphans: Orphans = Orphans.refuse,
               confirm: Callable[[list[str]], bool] = lambda _plan: True) -> Result:
        """Create what the applied migrations made and the database lacks, in one transaction.

        The rows already there are checked first against every constraint it will add: orphans
        (rows whose referenced row went with a dropped table) are refused unless `orphans` says
        what to do with them; other rows that a constraint refuses must be fixed by hand."""
        postgres = self.url.get_backend_name() == "postgresql"
        if orphans == Orphans.keep and not postgres:
            raise SchemaError(
                "orphans_keep_unsupported",
                "--orphans=keep needs PostgreSQL, which can add a foreign key NOT VALID; "
                "SQLite cannot check a key later, so it would keep broken rows unnoticed.",
                fix="workspaces db repair --orphans=null  # clear the references\n"
                    "workspaces db repair --orphans=delete  # delete the rows")
        if dry_run:
            return self._repair_dry_run(orphans)
        arguments = f"--orphans={orphans.value}" if orphans != Orphans.refuse else None
        with self._writer("repairing the schema", "repair", arguments) as writing:
            engine = writing.engine
            with engine.connect() as conn:
                report = self._analyze(conn)
                self._refuse_if_blocked(report, "repair")
                plan, manual = self._repair_plan(report)
                metadata = applied_model(report, self.migrations).to_metadata()
                violations = self._violations(conn, plan, metadata)
            self._refuse_for_data(violations, orphans)
            if not _deleting_confirmed(violations, orphans, confirm):
                writing.cancelled = True
                return Result(Exit.ERROR, ["Repair cancelled; nothing changed."],
                              {"cancelled": True})
            settled = Settled([], [])
            kept: list[str] = []
            if plan:
                def record(conn: Connection, started: datetime) -> None:
                    for mid in sorted({step.migration_id for step in plan}):
                        made = "; ".join(s.what for s in plan if s.migration_id == mid)
                        ledger.append(conn, migration_id=mid, action="repair",
                                      outcome=ledger.APPLIED,
                                      checksum=self.migrations.get(mid).checksum,
                                      started_at=started, note=f"recreated: {made}")

                settled, kept = self._run_plan(engine, plan, metadata, violations, orphans,
                                               record, doing="repair")
            with engine.connect() as conn:
                after = self._analyze(conn)
            writing.summary = "; ".join(
                [f"created {', '.join(s.what for s in plan)}" if plan else "nothing missing",
                 *settled.done, *(f"kept orphans of {k} (NOT VALID)" for k in kept)])
        # A table recorded as applied and missing was dropped, and its rows with it.
        lines = [f"created {step.what}" + (f", empty: {LOST}" if step.diff[0] == "add_table"
                                           else "") for step in plan]
        lines = lines or ["Nothing missing to create."]
        lines += _settled_lines(settled)
        lines += [f"added foreign key {k} NOT VALID: the rows that break it were kept; "
                  "`workspaces db verify` lists it until it is validated" for k in kept]
        lines += manual
        still = [d for d in after.differences if d.kind in (MISSING, DIFFERS)]
        if still:
            lines.append(f"{len(still)} difference(s) remain; see above for the manual steps.")
        else:
            lines.append("Live schema now matches the applied migrations.")
        return Result(Exit.DRIFT if still else Exit.OK, lines,
                      {"created": [step.what for step in plan], "manual": manual,
                       "lost_rows": [s.what for s in plan if s.diff[0] == "add_table"],
                       "orphans": settled.done,
                       "cleared": [c.as_dict() for c in settled.cleared],
                       "not_valid": kept, "status": after.as_dict()})

    def complete(self, migration_id: str, *, orphans: Orphans = Orphans.refuse,
                 confirm: Callable[[list[str]], bool] = lambda _plan: True) -> Result:
        """Finish a partly applied migration: create only what it makes that is missing, in
        one transaction (the rows in the way checked as for repair), then record it applied."""
        migration = self.migrations.get(migration_id)
        arguments = migration_id + (f" --orphans={orphans.value}"
                                    if orphans != Orphans.refuse else "")
        with self._writer("completing a migration", "complete", arguments) as writing:
            engine = writing.engine
            with engine.connect() as conn:
                report = self._analyze(conn, check_live=False)
                self._refuse_if_blocked_except(report, migration_id)
                model = model_through(self.migrations, migration_id)
                self._check_completable(report, model, migration_id)
                differences = [d for d in compare(conn, model)
                               if d.migration_id == migration_id and d.kind != EXTRA]
                plan, manual = self._plan(differences, model)
                if manual:
                    raise SchemaError(
                        "complete_refused",
                        f"Not completing {migration_id}: {'; '.join(manual)}.",
                        fix="workspaces db verify  # shows the expected definitions",
                        exit_code=Exit.DRIFT)
                present = [k for k in model.created_by(migration_id)
                           if k not in {d.key for d in differences}]
                metadata = model.to_metadata()
                violations = self._violations(conn, plan, metadata)
            self._refuse_for_data(violations, orphans, f"complete {migration_id}")
            if not _deleting_confirmed(violations, orphans, confirm):
                writing.cancelled = True
                return Result(Exit.ERROR, ["Cancelled; nothing changed."], {"cancelled": True})
            made = ", ".join(s.what for s in plan) or "nothing"
            there = describe_keys(present) or "nothing"
            note = f"completed: created {made}; already present: {there}"

            def record(conn: Connection, started: datetime) -> None:
                ledger.append(conn, migration_id=migration_id, action="complete",
                              outcome=ledger.APPLIED, checksum=migration.checksum,
                              started_at=started, note=note)

            settled, kept = self._run_plan(engine, plan, metadata, violations, orphans, record,
                                           doing=f"completing {migration_id}")
            writing.summary = "; ".join([note, *settled.done])
        lines = [f"created {step.what}" for step in plan]
        lines += _settled_lines(settled)
        lines += [f"added foreign key {k} NOT VALID (the rows that break it were kept)"
                  for k in kept]
        lines.append(f"Recorded {migration_id} as applied ({describe_keys(present) or 'nothing'} "
                     "already present).")
        return Result(Exit.OK, lines, {"migration": migration_id,
                                       "created": [s.what for s in plan],
                                       "already_present": [k.describe() for k in present],
                                       "orphans": settled.done,
                                       "cleared": [c.as_dict() for c in settled.cleared],
                                       "not_valid": kept},
                      next=["workspaces db status  # the rest, if anything is left"])

    def _refuse_if_blocked_except(self, report: Report, migration_id: str) -> None:
        """Like deploy: failed, diverged or modified history stops it, except a failed attempt
        at this very migration (a deploy that stopped on the objects that exist)."""
        others = [p for p in report.blocking()
                  if not (p.code == "failed" and p.migration_id == migration_id)]
        if others:
            self._refuse_if_blocked(Report(report.database, report.server,
                                           report.ledger_exists, report.migrations,
                                           problems=others), "complete")

    def _check_completable(self, report: Report, model: SchemaModel, migration_id: str) -> None:
        state = next(s for s in report.migrations if s.migration.id == migration_id)
        if state.state == ledger.APPLIED:
            raise SchemaError("already_applied", f"Migration {migration_id} is already applied.",
                              fix="workspaces db status  # shows the state; nothing to do")
        position = self.migrations.position(migration_id)
        earlier = [s.migration.id for s in report.migrations
                   if self.migrations.position(s.migration.id) < position
                   and s.state != ledger.APPLIED]
        if earlier:
            raise SchemaError(
                "earlier_not_applied",
                f"Not completing {migration_id}: the migrations before it are not all applied "
                f"({', '.join(earlier)}).",
                fix="workspaces db status  # says how to bring each one up to date")
        # Only what the live comparison verifies may be completed piecemeal: creating tables,
        # columns, indexes, unique constraints and foreign keys. Checks, alterations, drops and
        # data steps leave no trace the toolkit can see, so "missing" would be a guess.
        unchecked = list(model.unmodelled.get(migration_id, []))
        unchecked += sorted({_words(type(op).__name__)
                             for op in operations(self.migrations.get(migration_id), "upgrade")
                             if not isinstance(op, _COMPLETABLE)})
        if unchecked:
            raise SchemaError(
                "complete_unsupported",
                f"Not completing {migration_id}: it also runs {', '.join(unchecked)}, which the "
                "toolkit cannot check or redo piecemeal.",
                fix=f"workspaces db sql {migration_id}  # prints its SQL: run what is missing "
                    "by hand, then `workspaces db resolve --applied` it")

    def _run_plan(self, engine: Engine, plan: list[RepairStep], metadata: MetaData,
                  violations: list[Violation], orphans: Orphans,
                  record: Callable[[Connection, datetime], None], *, doing: str
                  ) -> tuple[Settled, list[str]]:
        """One transaction: settle the orphans, create what is missing, record it."""
        broken = {v.foreign_key for v in violations if v.kind == "orphans"}
        kept: list[str] = []
        started = ledger.now()
        try:
            with engine.begin() as conn:
                settled = settle(conn, metadata, violations, orphans)
                for step in plan:
                    fk = step.diff[1] if step.diff[0] == "add_fk" else None
                    if orphans == Orphans.keep and fk is not None and fk.name in broken:
                        add_not_valid(conn, fk)
                        kept.append(f"{fk.name} on {fk.table.name}")
                    else:
                        invoke_all(conn, [step.operation])
                record(conn, started)
        except SQLAlchemyError as exc:
            error = translate(exc, doing=doing)
            raise error.restated(f"{error.message} Nothing was changed.") from exc
        return settled, kept

    def _violations(self, conn: Connection, plan: list[RepairStep],
                    metadata: MetaData) -> list[Violation]:
        created = {s.diff[1].name for s in plan if s.diff[0] == "add_table"}
        return check_rows(conn, metadata, [s.diff for s in plan], created)

    def _refuse_for_data(self, violations: list[Violation], orphans: Orphans,
                         command: str = "repair") -> None:
        """Stop before changing anything when rows would break what repair adds."""
        if not violations:
            return
        listed = "; ".join(v.describe() for v in violations)
        by_hand = [v for v in violations if v.kind != "orphans"]
        if by_hand:
            raise SchemaError(
                "repair_blocked_by_rows",
                f"Not repairing: existing rows would break what repair adds: {listed}. "
                "Nothing was changed.",
                fix=f"workspaces db {command} --dry-run  # lists them again: fix or delete "
                    f"them by hand, then run `workspaces db {command}`",
                exit_code=Exit.DRIFT)
        if orphans == Orphans.null:
            fixed = [v for v in violations if not v.nullable]
            if fixed:
                raise SchemaError(
                    "orphans_not_nullable",
                    "Cannot set the references to NULL: "
                    + "; ".join(f"{v.table}.{', '.join(v.columns)} is NOT NULL" for v in fixed)
                    + ". Nothing was changed.",
                    fix=f"workspaces db {command} --orphans=delete  # delete those rows "
                        "instead",
                    exit_code=Exit.DRIFT)
        if orphans == Orphans.refuse:
            raise SchemaError(
                "orphans_found",
                f"Not repairing: {listed}. Choose what happens to them; nothing was changed.",
                fix=self._orphan_choices(violations, command), exit_code=Exit.DRIFT)

    def _orphan_choices(self, violations: list[Violation], command: str) -> str:
        choices = []
        if all(v.nullable for v in violations):
            choices.append(f"workspaces db {command} --orphans=null  # clear the references, "
                           "keep the rows")
        choices.append(f"workspaces db {command} --orphans=delete  # delete the rows")
        if self.url.get_backend_name() == "postgresql":
            choices.append(f"workspaces db {command} --orphans=keep  # keep the rows; the keys "
                           "are added NOT VALID")
        return "\n".join(choices)

    def _repair_dry_run(self, orphans: Orphans) -> Result:
        report = self.status()
        plan, manual = self._repair_plan(report)
        violations: list[Violation] = []
        if plan and report.ledger_exists:
            metadata = applied_model(report, self.migrations).to_metadata()
            with (self._engine_for("checking the rows", read_only=True,
                                   schema_change=False) as engine, engine.connect() as conn):
                violations = self._violations(conn, plan, metadata)
        sql = render_operations([s.operation for s in plan], self.url.get_backend_name())
        lines = [sql.strip() or "-- nothing to repair", *manual]
        data: dict[str, Any] = {"sql": sql, "manual": manual,
                                "rows": [v.as_dict() for v in violations]}
        if violations:
            lines.append("Existing rows that what repair adds would refuse:")
            lines += [f"  {v.describe()}" for v in violations]
        try:
            self._refuse_for_data(violations, orphans)
        except SchemaError as refusal:
            lines.append(f"db repair would refuse ({refusal.code}); nothing was changed.")
            data["refused"] = refusal.as_dict()
            return Result(refusal.exit_code, lines, data,
                          next=(refusal.fix or "").splitlines())
        if violations:
            lines.append(f"With --orphans={orphans.value} repair would: "
                         + ("set the references to NULL" if orphans == Orphans.null else
                            "delete those rows" if orphans == Orphans.delete else
                            "add those keys NOT VALID and keep the rows"))
        return Result(Exit.OK, lines, data)

    def _repair_plan(self, report: Report) -> tuple[list[RepairStep], list[str]]:
        return self._plan(report.differences, applied_model(report, self.migrations))

    def _plan(self, differences: list[Difference], model: SchemaModel
              ) -> tuple[list[RepairStep], list[str]]:
        """Alembic operations creating each missing object, tables first, foreign keys last;
        and the objects that differ, which only a person may change. SQLite cannot add a
        check to a table that exists (only a rebuild can): that one is for a person too."""
        rank = {"add_table": 0, "add_column": 1, "add_constraint": 2, "add_check": 2,
                "add_index": 3, "add_fk": 4}
        sqlite = self.url.get_backend_name() == "sqlite"
        by_hand = [d for d in differences
                   if sqlite and d.kind == MISSING and d.diff[0] == "add_check"]
        missing = [d for d in differences
                   if d.kind == MISSING and d.migration_id and d not in by_hand]
        table_order = {t.name: i for i, t in enumerate(model.to_metadata().sorted_tables)}
        missing.sort(key=lambda d: (rank.get(d.diff[0], 9), table_order.get(d.key.table, 0)))
        plan = [
            RepairStep(operation, d.key.describe(), d.migration_id, d.diff)
            for d in missing
            if d.migration_id and (operation := _operation_for(d.diff)) is not None
        ]
        manual = [
            f"manual: {d.describe()} (migration {d.migration_id}); repair never rewrites an "
            "existing object: alter it by hand, then run `workspaces db verify`"
            for d in differences if d.kind == DIFFERS
        ]
        manual += [
            f"manual: {d.describe()} (migration {d.migration_id}); SQLite adds a check only "
            f"by rebuilding the table: `workspaces db sql {d.migration_id}` shows its "
            "definition" for d in by_hand
        ]
        return plan, manual


# What a recreated table lost, and where to get it back.
LOST = ("the rows it held were lost when it was dropped; restore them from a backup, see "
        "docs/production-migrations.md")


def _settled_lines(settled: Settled) -> list[str]:
    """What settling the orphans did, then each reference it cleared (and its old value)."""
    cleared = [f"  cleared {c.describe()}" for c in settled.cleared]
    return settled.done + (["References cleared (link them again after restoring the rows "
                            "they pointed at):", *cleared] if cleared else [])


def _deleting_confirmed(violations: list[Violation], orphans: Orphans,
                        confirm: Callable[[list[str]], bool]) -> bool:
    """`--orphans=delete` with rows to delete asks first (shown the rows); anything else
    needs no question. (Only orphans remain here: other violations were refused.)"""
    if orphans != Orphans.delete or not violations:
        return True
    return confirm([f"delete {v.describe()}" for v in violations])


_COMPLETABLE = (alembic_ops.CreateTableOp, alembic_ops.AddColumnOp, alembic_ops.CreateIndexOp,
                alembic_ops.CreateUniqueConstraintOp, alembic_ops.CreateForeignKeyOp)


def _words(name: str) -> str:
    """`CreateCheckConstraintOp` -> `create check constraint`."""
    return " ".join(re.findall(r"[A-Z][a-z]*", name.removesuffix("Op"))).lower()


def _operation_for(diff: Any) -> alembic_ops.MigrateOperation | None:
    kind = diff[0]
    if kind == "add_table":
        return alembic_ops.CreateTableOp.from_table(diff[1])
    if kind == "add_column":
        return alembic_ops.AddColumnOp.from_column_and_tablename(diff[1], diff[2], diff[3])
    if kind == "add_index":
        return alembic_ops.CreateIndexOp.from_index(diff[1])
    if kind in ("add_constraint", "add_fk", "add_check"):
        return alembic_ops.AddConstraintOp.from_constraint(diff[1])
    return None
