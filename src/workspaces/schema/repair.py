"""Verify and repair: the live schema against what the applied migrations should have made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic.operations import ops as alembic_ops
from sqlalchemy.exc import SQLAlchemyError

from workspaces.errors import Exit
from workspaces.schema import ledger
from workspaces.schema.core import Result, ToolkitCore
from workspaces.schema.errors import translate
from workspaces.schema.live import DIFFERS, EXTRA, MISSING
from workspaces.schema.runner import invoke_all, render_operations
from workspaces.schema.status import (
    Report,
    applied_model,
)


@dataclass(frozen=True)
class RepairStep:
    operation: alembic_ops.MigrateOperation
    what: str
    migration_id: str


class Repairing(ToolkitCore):
    """Comparing the live schema with the applied migrations, and recreating what is missing."""

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
                    raise error.restated(f"{error.message} Nothing was changed.") from exc
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
