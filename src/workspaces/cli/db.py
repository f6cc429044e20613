"""`workspaces db ...`: the schema toolkit's commands."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from workspaces.cli.common import (
    AsJson,
    DatabaseUrl,
    LockTimeout,
    finish,
    guard,
    open_toolkit,
)
from workspaces.errors import Exit, SchemaError

db_app = typer.Typer(no_args_is_help=True, help="Check, apply and repair the database schema.")

_EXIT_MEANING = {
    Exit.OK: "up to date; live schema matches",
    Exit.PENDING: "pending migrations",
    Exit.FAILED: "a failed migration blocks deploys",
    Exit.DIVERGED: "history diverged or a revision file changed",
    Exit.DRIFT: "drift: applied migrations' objects are missing or differ",
}


@db_app.command()
def status(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Show applied, pending and failed migrations and check the live schema (read-only)."""
    with guard(as_json):
        report = open_toolkit(database_url, as_json).status()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        raise typer.Exit(int(report.exit_code))
    print(f"Database: {report.database} ({report.server})")
    width = max((len(m.migration.id) for m in report.migrations), default=10)
    for m in report.migrations:
        extra = ""
        if m.latest and m.state != "pending":
            when = m.latest.as_dict()["finished_at"] or m.latest.as_dict()["started_at"]
            extra = (f"{when[:19].replace('T', ' ')} UTC by {m.latest.applied_by}"
                     f" ({m.latest.action})")
        elif m.creates:
            extra = f"creates {', '.join(m.creates)}"
        print(f"  {m.state:<8} {m.migration.id:<{width}}  {extra}".rstrip())
    for entry in report.unknown:
        print(f"  {'unknown':<8} {entry.migration_id:<{width}}  recorded {entry.outcome}, "
              "not in this code")
    if report.problems:
        print("Problems:")
        for p in report.problems:
            print(f"  [{p.code}] {p.message}")
            if p.fix:
                print(f"      next: {p.fix}")
    code = report.exit_code
    print(f"Exit {int(code)}: {_EXIT_MEANING[code]}.")
    raise typer.Exit(int(code))


@db_app.command()
def deploy(
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
    to: Annotated[str | None, typer.Option("--to", help="Stop after this migration.")] = None,
) -> None:
    """Apply pending migrations in order, under the deploy lock, then verify the schema."""
    with guard(as_json):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        finish(toolkit.deploy(to=to), as_json)


@db_app.command()
def resolve(
    applied: Annotated[str | None, typer.Option("--applied", metavar="ID",
                       help="Record a pending or failed migration as applied.")] = None,
    rolled_back: Annotated[str | None, typer.Option("--rolled-back", metavar="ID",
                           help="Record a failed or removed migration as rolled back.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Skip the live-schema check.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Record a decision about a migration after checking the live schema."""
    with guard(as_json):
        if (applied is None) == (rolled_back is None):
            raise SchemaError("bad_arguments", "Give exactly one of --applied ID or "
                              "--rolled-back ID.")
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        migration_id = applied or rolled_back
        assert migration_id is not None  # noqa: S101 (narrowing for mypy)
        finish(toolkit.resolve(migration_id, applied=applied is not None, force=force), as_json)


@db_app.command()
def verify(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Compare the live schema with what the applied migrations should have produced."""
    with guard(as_json):
        finish(open_toolkit(database_url, as_json).verify(), as_json)


@db_app.command()
def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL only.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Create the objects applied migrations made that are missing, in one transaction."""
    with guard(as_json):
        finish(open_toolkit(database_url, as_json, lock_timeout,
                            writes=not dry_run).repair(dry_run=dry_run), as_json)


@db_app.command()
def rollback(
    migration_id: Annotated[str | None, typer.Argument(metavar="[ID]",
                            help="Roll back every migration back to and including ID.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Run the down step of the latest migration (or back to ID), after showing what it drops."""

    def confirm(plan: list[str]) -> bool:
        out = sys.stderr if as_json else sys.stdout
        print("This will:", file=out)
        for line in plan:
            print(f"  {line}", file=out)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise SchemaError("confirmation_required", "Rollback destroys data and needs "
                              "confirmation, but there is no terminal to ask.",
                              fix="Rerun with --yes once you have read the plan above.")
        return typer.confirm("Proceed?", default=False)

    with guard(as_json):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        finish(toolkit.rollback(migration_id, confirm=confirm), as_json)


@db_app.command()
def baseline(
    database_url: DatabaseUrl = None, as_json: AsJson = False, lock_timeout: LockTimeout = 60.0
) -> None:
    """Adopt an existing database: record as applied each migration whose objects exist."""
    with guard(as_json):
        finish(open_toolkit(database_url, as_json, lock_timeout, writes=True).baseline(), as_json)


@db_app.command()
def execute(
    file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False,
                    help="SQL script to run.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the script from stdin.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Run an SQL script in one transaction; on error nothing changes."""
    with guard(as_json):
        if (file is None) == (not stdin):
            raise SchemaError("bad_arguments", "Give exactly one of --file PATH or --stdin.")
        script = file.read_text() if file is not None else sys.stdin.read()
        finish(open_toolkit(database_url, as_json, writes=True).execute(script), as_json)


class Dialect(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


@db_app.command()
def sql(
    migration_id: Annotated[str, typer.Argument(metavar="ID")],
    down: Annotated[bool, typer.Option("--down", help="The down step instead.")] = False,
    dialect: Annotated[Dialect | None, typer.Option(
        "--dialect", help="Render for this kind of database (default: the database's).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a migration's SQL for a kind of database (connects to nothing)."""
    with guard(False):
        toolkit = open_toolkit(database_url, False)
        if dialect is None and database_url is None:  # nothing said which: say what we chose
            print(f"-- rendered for {toolkit.url.get_backend_name()} (the default database); "
                  "--dialect postgresql or --database-url URL renders for another",
                  file=sys.stderr)
        print(toolkit.sql(migration_id, down=down,
                          dialect=dialect.value if dialect else None), end="")


@db_app.command()
def new(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    empty: Annotated[bool, typer.Option("--empty", help="Write an empty revision.")] = False,
) -> None:
    """Write a new revision from the difference between the models and the head schema."""
    with guard(False):
        finish(open_toolkit("sqlite://", False).new(message, empty=empty), False)


