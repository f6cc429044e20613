"""`workspaces db ...`: the schema toolkit's commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from workspaces.cli.common import (
    AsJson,
    DatabaseUrl,
    LockTimeout,
    Target,
    finish,
    guard,
    open_toolkit,
)
from workspaces.errors import Exit, SchemaError, hints
from workspaces.schema.choices import Orphans

db_app = typer.Typer(no_args_is_help=True, help="Check, apply and repair the database schema.")

_EXIT_MEANING = {
    Exit.OK: "up to date; live schema matches",
    Exit.PENDING: "pending migrations",
    Exit.FAILED: "a failed migration blocks deploys",
    Exit.DIVERGED: "history diverged or a revision file changed",
    Exit.DRIFT: "drift: applied migrations' objects are missing or differ",
}


class StatusFormat(StrEnum):
    text = "text"
    json = "json"
    prometheus = "prometheus"


@db_app.command()
def status(
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    output: Annotated[StatusFormat, typer.Option(
        "--format", help="text; json (as --json); prometheus: the schema gauges of GET "
        "/metrics, for a textfile collector (exit code as for text).")] = StatusFormat.text,
) -> None:
    """Show applied, pending and failed migrations and check the live schema (read-only)."""
    from workspaces.schema.verified import quick_status
    from workspaces.settings import get_settings

    target = Target.of(database_url)
    if output is StatusFormat.prometheus:
        with guard(as_json, target):
            if as_json:
                raise SchemaError("bad_arguments", "Give --json or --format prometheus, not "
                                  "both.")
            _print_gauges(database_url)
    as_json = as_json or output is StatusFormat.json
    with guard(as_json, target):
        settings = get_settings()
        report = (quick_status(database_url or settings.database_url,
                               settings.workspaces_migrations_dir)
                  or open_toolkit(database_url, as_json).status(quick=False))
    if as_json:
        body = {"ok": report.exit_code == 0, **target.report(report.as_dict())}
        print(json.dumps(body, indent=2, default=str))
        raise typer.Exit(int(report.exit_code))
    print(f"Database: {report.database} ({report.server})")
    if report.in_progress:
        print(f"Schema change in progress: {report.in_progress} holds the deploy lock; what "
              "follows was read while it runs and may change when it finishes.")
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
        shown: set[str] = set()
        for p in report.problems:
            print(f"  [{p.code}] {p.message}")
            if p.fix not in shown:  # one repair fixes every missing object: said once
                target.print_steps(target.steps(p.fix), indent="      ",
                                   advice=hints(p.fix))
                shown.add(p.fix or "")
    code = report.exit_code
    during = " so far: a schema change is in progress" if report.in_progress else ""
    print(f"Exit {int(code)}: {_EXIT_MEANING[code]}{during}.")
    raise typer.Exit(int(code))


def _print_gauges(database_url: str | None) -> NoReturn:
    """The schema gauges in Prometheus' text format, exit code as for text; a database that
    does not answer still gets its gauges (up 0) on stdout, then the error on stderr, exit 1."""
    from workspaces.metrics.database import exposition, schema_facts

    try:
        report = open_toolkit(database_url, False).status()
    except SchemaError:
        sys.stdout.write(exposition(schema_facts(None)).decode())
        raise
    sys.stdout.write(exposition(schema_facts(report)).decode())
    raise typer.Exit(int(report.exit_code))


@db_app.command()
def deploy(
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
    to: Annotated[str | None, typer.Option("--to", help="Stop after this migration.")] = None,
) -> None:
    """Apply pending migrations in order, under the deploy lock, then verify the schema."""
    target = Target.of(database_url)
    with guard(as_json, target):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        finish(toolkit.deploy(to=to), as_json, target)


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
    target = Target.of(database_url)
    with guard(as_json, target):
        if (applied is None) == (rolled_back is None):
            raise SchemaError("bad_arguments", "Give exactly one of --applied ID or "
                              "--rolled-back ID.")
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        migration_id = applied or rolled_back
        assert migration_id is not None  # noqa: S101 (narrowing for mypy)
        finish(toolkit.resolve(migration_id, applied=applied is not None, force=force),
               as_json, target)


@db_app.command()
def verify(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Compare the live schema with what the applied migrations should have produced."""
    target = Target.of(database_url)
    with guard(as_json, target):
        finish(open_toolkit(database_url, as_json).verify(), as_json, target)


def _confirm(what: str, yes: bool, as_json: bool, rerun: str) -> Callable[[list[str]], bool]:
    """Show a destructive plan, then ask (a terminal) or take --yes; no terminal, no --yes:
    refuse, naming the command to rerun (`rerun`, which already ends in --yes)."""

    def confirm(plan: list[str]) -> bool:
        out = sys.stderr if as_json else sys.stdout
        print("This will:", file=out)
        for line in plan:
            print(f"  {line}", file=out)
        # Before the question or the refusal (on stderr): read first, also in a merged log.
        out.flush()
        if yes:
            return True
        if not sys.stdin.isatty():
            raise SchemaError("confirmation_required", f"{what} destroys data and needs "
                              "confirmation, but there is no terminal to ask.",
                              fix=f"{rerun}  # once you have read the plan above")
        return typer.confirm("Proceed?", default=False, err=as_json)

    return confirm


OrphansChoice = Annotated[Orphans, typer.Option(
    "--orphans", help="Rows whose referenced row is gone: refuse (show them and stop), null "
    "(clear the reference), delete (the rows), keep (PostgreSQL: add the key NOT VALID).")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask before deleting rows.")]


@db_app.command()
def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL and count the rows "
                       "in the way; change nothing.")] = False,
    orphans: OrphansChoice = Orphans.refuse,
    yes: Yes = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Create the objects applied migrations made that are missing, in one transaction."""
    target = Target.of(database_url)
    with guard(as_json, target):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=not dry_run)
        finish(toolkit.repair(dry_run=dry_run, orphans=orphans,
                              confirm=_confirm("Deleting rows", yes, as_json,
                                               "workspaces db repair --orphans=delete --yes")),
               as_json, target)


@db_app.command()
def complete(
    migration_id: Annotated[str, typer.Argument(metavar="ID")],
    orphans: OrphansChoice = Orphans.refuse,
    yes: Yes = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Finish a partly applied migration: create only what it makes that is missing, then
    record it applied (one transaction)."""
    target = Target.of(database_url)
    with guard(as_json, target):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        finish(toolkit.complete(migration_id, orphans=orphans,
                                confirm=_confirm(
                                    "Deleting rows", yes, as_json,
                                    f"workspaces db complete {migration_id} --orphans=delete "
                                    "--yes")),
               as_json, target)


@db_app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest last.")] = 20,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """List what the toolkit did to the database: who, when, what, and how it ended."""
    target = Target.of(database_url)
    with guard(as_json, target):
        events = open_toolkit(database_url, as_json).history(limit=limit)
    if as_json:
        print(json.dumps({"ok": True, "events": [e.as_dict() for e in events]}, indent=2))
        raise typer.Exit(0)
    if not events:
        print("No schema command has written to this database yet.")
    for e in events:
        when = e.as_dict()["started_at"][:19].replace("T", " ")
        asked = f" {e.arguments}" if e.arguments else ""
        print(f"#{e.seq} {when} UTC  {e.actor}  {e.command}{asked}: {e.outcome}  "
              f"(on {e.target})")
        if e.summary:
            print(f"      {e.summary}")
        if e.error:
            print(f"      error[{e.error_code}]: {e.error}")


@db_app.command()
def rollback(
    migration_id: Annotated[str | None, typer.Argument(metavar="[ID]",
                            help="Roll back every migration back to and including ID.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Run the down step of the latest migration (or back to ID), after showing what it drops.
    Answering no changes nothing and exits 1."""
    target = Target.of(database_url)
    with guard(as_json, target):
        toolkit = open_toolkit(database_url, as_json, lock_timeout, writes=True)
        rerun = " ".join(["workspaces db rollback", *([migration_id] if migration_id else []),
                          "--yes"])
        finish(toolkit.rollback(migration_id,
                                confirm=_confirm("Rollback", yes, as_json, rerun)),
               as_json, target)


@db_app.command()
def baseline(
    database_url: DatabaseUrl = None, as_json: AsJson = False, lock_timeout: LockTimeout = 60.0
) -> None:
    """Adopt an existing database: record as applied each migration whose objects exist."""
    target = Target.of(database_url)
    with guard(as_json, target):
        finish(open_toolkit(database_url, as_json, lock_timeout, writes=True).baseline(),
               as_json, target)


@db_app.command()
def execute(
    file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False,
                    help="SQL script to run.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the script from stdin.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Run an SQL script in one transaction; on error nothing changes."""
    target = Target.of(database_url)
    with guard(as_json, target):
        if (file is None) == (not stdin):
            raise SchemaError("bad_arguments", "Give exactly one of --file PATH or --stdin.")
        script = file.read_text() if file is not None else sys.stdin.read()
        finish(open_toolkit(database_url, as_json, writes=True).execute(script), as_json, target)


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
    as_json: AsJson = False,
) -> None:
    """Print a migration's SQL for a kind of database (connects to nothing)."""
    target = Target.of(database_url)
    with guard(as_json, target):
        toolkit = open_toolkit(database_url, as_json)
        chosen = dialect.value if dialect else toolkit.url.get_backend_name()
        if dialect is None and database_url is None:  # nothing said which: say what we chose
            print(f"-- rendered for {chosen} (the default database); "
                  "--dialect postgresql or --database-url URL renders for another",
                  file=sys.stderr)
        script = toolkit.sql(migration_id, down=down, dialect=chosen)
        # Its last line names the command that records the migration: pasteable too.
        head, marker, record = script.rstrip("\n").rpartition(": workspaces ")
        if marker:
            script = f"{head}: {target.step('workspaces ' + record)}\n"
    if as_json:
        print(json.dumps({"ok": True, "migration": migration_id,
                          "direction": "down" if down else "up", "dialect": chosen,
                          "sql": script}, indent=2))
    else:
        print(script, end="")


@db_app.command()
def new(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    empty: Annotated[bool, typer.Option("--empty", help="Write an empty revision.")] = False,
    as_json: AsJson = False,
) -> None:
    """Write a new revision from the difference between the models and the head schema."""
    with guard(as_json):
        finish(open_toolkit("sqlite://", as_json).new(message, empty=empty), as_json)
