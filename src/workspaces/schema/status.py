"""Read-only analysis: what is applied, pending, failed, diverged or drifted, and what to run."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, inspect, text

from workspaces.errors import Exit
from workspaces.schema import ledger
from workspaces.schema.expected import ObjectKey, SchemaModel, build_model
from workspaces.schema.live import DIFFERS, EXTRA, MISSING, compare, missing_keys
from workspaces.schema.report import PENDING, MigrationState, Problem, Report, describe_keys
from workspaces.schema.revisions import MigrationSet

__all__ = ["PENDING", "MigrationState", "Problem", "Report", "analyze", "describe_keys"]

def _first_things_first(report: Report) -> None:
    """Deploy will refuse until this problem is dealt with: the pending migrations stay listed,
    without `workspaces db deploy` as their next step."""
    report.problems[:] = [replace(p, fix=None) if p.code == PENDING else p
                          for p in report.problems]


def server_version(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return f"PostgreSQL {conn.execute(text('SHOW server_version')).scalar_one()}"
    return f"SQLite {conn.execute(text('select sqlite_version()')).scalar_one()}"


def applied_model(report: Report, migrations: MigrationSet) -> SchemaModel:
    """The schema the applied migrations made. A migration the ledger lacks between applied
    ones (its row deleted) counts in: the later ones build on what it made (without it the
    model cannot be built), and the pending check says what became of its objects."""
    applied = {migrations.position(mid) for mid in report.applied_ids}
    return build_model(migrations.migrations[: max(applied, default=-1) + 1])


def model_through(migrations: MigrationSet, migration_id: str) -> SchemaModel:
    """The schema after this migration and every one before it: what it builds on and adds."""
    end = migrations.position(migration_id)
    return build_model(migrations.migrations[: end + 1])


def objects_missing(conn: Connection, model: SchemaModel, migration_id: str) -> list[ObjectKey]:
    """Objects the migration creates (per the model) that the live database lacks or has wrong."""
    missing = missing_keys(model, compare(conn, model))
    return sorted(k for k in model.created_by(migration_id) if k in missing)


def analyze(
    conn: Connection | None, migrations: MigrationSet, *, database: str, check_live: bool = True
) -> Report:
    """The full picture; `conn` None stands for a database that does not exist yet."""
    entries = ledger.read(conn) if conn is not None and ledger.exists(conn) else []
    # An empty ledger (a writing command made the table, then stopped) says no more than none.
    has_ledger = bool(entries)
    latest = ledger.latest_by_migration(entries)
    whole = build_model(migrations)
    states: list[MigrationState] = []
    for migration in migrations:
        entry = latest.get(migration.id)
        state = PENDING if entry is None or entry.outcome == ledger.ROLLED_BACK else entry.outcome
        checksum_ok = not (
            state == ledger.APPLIED and entry and entry.checksum != migration.checksum
        )
        creates = [k.table for k in whole.created_by(migration.id) if k.kind == "table"]
        states.append(MigrationState(migration, state, entry, checksum_ok, creates=creates))
    report = Report(
        database=database,
        server=server_version(conn) if conn is not None else "not created yet",
        ledger_exists=has_ledger,
        migrations=states,
        unknown=[
            e for mid, e in latest.items()
            if mid not in migrations and e.outcome != ledger.ROLLED_BACK
        ],
    )
    _ledger_problems(report)
    if check_live and conn is not None:
        _live_problems(conn, report, migrations)
        if report.problems:  # a clean report has everything; only then is it worth a look
            report.absent = absent_objects(conn, whole)
    elif conn is None:
        report.absent = sorted(ObjectKey("table", name) for name in whole.tables)
    return report


def absent_objects(conn: Connection, model: SchemaModel) -> list[ObjectKey]:
    """The model's tables and columns that the live database lacks (a missing table counts
    with its columns)."""
    missing = missing_keys(model, [d for d in compare(conn, model) if d.kind == MISSING])
    return sorted(k for k in missing if k.kind in ("table", "column"))


def _ledger_problems(report: Report) -> None:
    add = report.problems.append
    for entry in report.unknown:
        add(Problem(
            "diverged", Exit.DIVERGED,
            f"The database records migration {entry.migration_id} ({entry.outcome}), "
            "which this code does not have.",
            fix="Deploy the code that contains it (docs/production-migrations.md, exit 4).\n"
                "If it was abandoned: roll it back with that code's `workspaces db rollback`.",
            migration_id=entry.migration_id,
        ))
    for state in report.migrations:
        mid = state.migration.id
        if not state.checksum_ok:
            add(Problem(
                "checksum_mismatch", Exit.DIVERGED,
                f"Migration {mid} was applied from a different version of "
                f"{state.migration.path.name} (the file changed after it landed).",
                fix=f"workspaces db resolve --applied {mid}  # the change is deliberate and "
                    "harmless: accept it\n"
                    f"Or restore {state.migration.path.name} from version control (the change "
                    "was not meant to land): then there is nothing to record.",
                migration_id=mid,
            ))
        elif state.state == ledger.FAILED:
            _first_things_first(report)  # deploy refuses until it is resolved
            error = (state.latest.error or "").splitlines()[0] if state.latest else ""
            add(Problem(
                "failed", Exit.FAILED,
                f"Migration {mid} failed ({error}) and blocks deploys.",
                fix=f"workspaces db resolve --rolled-back {mid}  # once the cause is fixed; "
                    "deploy then retries it\n"
                    f"workspaces db resolve --applied {mid}  # you completed it by hand",
                migration_id=mid,
            ))
        elif state.state == PENDING:
            blocked = any(p.exit_code >= Exit.FAILED for p in report.problems)
            add(Problem(
                "pending", Exit.PENDING, f"Migration {mid} is pending.",
                fix=None if blocked else "workspaces db deploy", migration_id=mid,
            ))


def _live_problems(conn: Connection, report: Report, migrations: MigrationSet) -> None:
    add = report.problems.append
    model = applied_model(report, migrations)
    report.differences = compare(conn, model)
    gone = {d.key.table for d in report.differences
            if d.kind == MISSING and d.key.kind == "table"}
    unrecorded = {state.migration.id for state in report.in_state(PENDING)}
    for difference in report.differences:
        if difference.kind == EXTRA or (difference.key.kind != "table"
                                        and difference.key.table in gone):
            continue  # a missing table's indexes are implied by it
        if difference.migration_id in unrecorded:
            continue  # not recorded as applied: the pending check below tells its objects
        mid = difference.migration_id or "an applied migration"
        if difference.kind == MISSING:
            add(Problem(
                "drift_missing", Exit.DRIFT,
                f"Migration {mid} is recorded as applied but {difference.describe()}.",
                fix="workspaces db repair",
                migration_id=difference.migration_id,
            ))
        elif difference.kind == DIFFERS:
            add(Problem(
                "drift_differs", Exit.DRIFT,
                f"Migration {mid} is recorded as applied but {difference.describe()}.",
                fix="workspaces db verify  # shows the expected definition: change it back by "
                    "hand (repair never rewrites existing objects)",
                migration_id=difference.migration_id,
            ))
    pending = report.in_state(PENDING)
    if not pending:
        return
    ours = set(inspect(conn).get_table_names()) & set(build_model(migrations).tables)
    if not report.ledger_exists and ours:
        _first_things_first(report)
        add(Problem(
            "no_ledger", Exit.PENDING,
            f"The database has tables ({', '.join(sorted(ours))}) but no migration "
            "ledger: it predates this toolkit.",
            fix="workspaces db baseline  # records as applied each migration whose objects "
                "are verified present",
        ))
        return
    for state in pending:
        mid = state.migration.id
        ahead = model_through(migrations, mid)
        created = ahead.created_by(mid)
        missing = objects_missing(conn, ahead, mid)
        present = [k for k in created if k not in missing]
        if created and not missing:
            _first_things_first(report)  # deploy refuses until it is recorded
            add(Problem(
                "objects_present", Exit.PENDING,
                f"Migration {mid} is pending but everything it creates already exists "
                "(created by hand?).",
                fix=f"workspaces db resolve --applied {mid}  # after checking the objects",
                migration_id=mid,
            ))
        elif present:
            _first_things_first(report)
            state.partial = (present, missing)
            add(Problem(
                "partial", Exit.DRIFT,
                f"Migration {mid} is partly applied: present: {describe_keys(present)}; "
                f"missing: {describe_keys(missing)}. Deploy would stop at what exists.",
                fix=f"workspaces db complete {mid}  # creates only what is missing, then "
                    "records it applied",
                migration_id=mid,
            ))
