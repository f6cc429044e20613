"""Resolve and baseline: the ledger is told what happened, once the live schema agrees."""

from __future__ import annotations

from sqlalchemy import Connection

from workspaces.errors import Exit, SchemaError
from workspaces.schema import ledger
from workspaces.schema.core import Result, ToolkitCore
from workspaces.schema.expected import SchemaModel, build_model
from workspaces.schema.status import (
    PENDING,
    Report,
    describe_keys,
    model_through,
    objects_missing,
)


class Deciding(ToolkitCore):
    """Recording decisions after checking the live schema: resolve and baseline."""

    def resolve(self, migration_id: str, *, applied: bool, force: bool = False) -> Result:
        migration = self.migrations.get(migration_id)
        flag = "--applied" if applied else "--rolled-back"
        with (self._writer("resolving a migration", "resolve",
                           f"{flag} {migration_id}" + (" --force" if force else "")) as writing,
              writing.engine.begin() as conn):
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
            writing.summary = f"recorded {migration_id} as {outcome.replace('_', ' ')} ({note})"
        verb = "applied" if applied else "rolled back"
        lines = [f"Recorded {migration_id} as {verb} ({note})."]
        return Result(Exit.OK, lines, {"migration": migration_id, "recorded": verb, "note": note},
                      next=[] if applied else ["workspaces db deploy  # applies it again"])

    def _check_resolve_applied(
        self, conn: Connection, report: Report, state: str, checksum_ok: bool,
        migration_id: str, force: bool,
    ) -> str:
        if state == ledger.APPLIED and checksum_ok:
            raise SchemaError("already_applied", f"Migration {migration_id} is already applied.",
                              fix="workspaces db status  # shows the state; nothing to do")
        missing = objects_missing(conn, model_through(self.migrations, migration_id),
                                  migration_id)
        if missing and not force:
            raise SchemaError(
                "objects_missing",
                f"Not recording {migration_id} as applied: the database lacks "
                f"{describe_keys(missing)}.",
                fix=f"workspaces db complete {migration_id}  # creates what is missing, then "
                    "records it\n"
                    f"workspaces db resolve --applied {migration_id} --force  # records it "
                    "anyway",
            )
        if missing:
            return f"forced; missing: {describe_keys(missing)}"
        if state == ledger.APPLIED:
            return "file checksum accepted; objects verified present"
        return "objects verified present"

    def _check_resolve_rolled_back(
        self, conn: Connection, report: Report, state: str, migration_id: str, force: bool
    ) -> str:
        if state == PENDING:
            raise SchemaError("not_applied", f"Migration {migration_id} is not applied or "
                              "failed; there is nothing to mark rolled back.",
                              fix="workspaces db deploy  # applies it")
        model = model_through(self.migrations, migration_id)
        if state == ledger.APPLIED and not force:
            self._refuse_if_later_migrations_changed(report, model, migration_id)
        missing = set(objects_missing(conn, model, migration_id))
        present = [k for k in model.created_by(migration_id) if k not in missing]
        if present and not force:
            raise SchemaError(
                "objects_present",
                f"Not recording {migration_id} as rolled back: the database still has "
                f"{describe_keys(present)}.",
                fix=f"workspaces db rollback {migration_id}  # runs its down step\n"
                    f"workspaces db resolve --rolled-back {migration_id} --force  # records "
                    "it anyway",
            )
        if present:
            return f"forced; still present: {describe_keys(present)}"
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
                fix="workspaces db repair  # recreates the objects as the applied migrations "
                    "left them\n"
                    f"workspaces db resolve --rolled-back {migration_id} --force  # records "
                    "the rollback anyway",
            )

    def baseline(self) -> Result:
        lines: list[str] = []
        recorded: list[str] = []
        with (self._writer("baselining", "baseline") as writing,
              writing.engine.begin() as conn):
            if ledger.read(conn):
                raise SchemaError("ledger_exists", "The database already has a migration "
                                  "ledger; baseline is for databases that predate it.",
                                  fix="workspaces db status  # says what to resolve")
            for migration in self.migrations:
                missing = objects_missing(conn, model_through(self.migrations, migration.id),
                                          migration.id)
                if missing:
                    lines.append(f"stopped at {migration.id}: missing {describe_keys(missing)}")
                    break
                ledger.append(conn, migration_id=migration.id, action="baseline",
                              outcome=ledger.APPLIED, checksum=migration.checksum,
                              started_at=ledger.now(), note="objects verified present")
                recorded.append(migration.id)
                lines.append(f"recorded {migration.id} as applied (objects verified present)")
            writing.summary = f"recorded {len(recorded)} migration(s) as applied"
            after = self._analyze(conn)
        rest = len(self.migrations) - len(recorded)
        lines.append(f"Baseline: {len(recorded)} recorded as applied, {rest} left.")
        # What status would say next (the rest may be pending, or one of them half there).
        first = next((p.fix for p in sorted(after.problems, key=lambda p: -p.exit_code)
                      if p.fix), None)
        return Result(Exit.OK, lines, {"recorded": recorded},
                      next=first.splitlines() if first else [])
