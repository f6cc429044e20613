"""The `workspaces` command line. Thin: parse arguments, call the toolkit, print the result."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from workspaces import __version__
from workspaces.errors import Error, Exit, SchemaError, SchemaOutOfDate

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Workspaces: members and invitations, and the schema toolkit.")
db_app = typer.Typer(no_args_is_help=True, help="Check, apply and repair the database schema.")
app.add_typer(db_app, name="db")

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL", show_envvar=True,
                 help="Database URL (default: sqlite:///workspaces.db)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document for machines.")]
LockTimeout = Annotated[
    float, typer.Option("--lock-timeout", min=0, help="Seconds to wait for the deploy lock.")
]


def _fail(error: Error, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"ok": False, "error": error.as_dict()}, indent=2))
    else:
        print(f"error[{error.code}]: {error.message}", file=sys.stderr)
        if error.fix:
            print(f"  next: {error.fix}", file=sys.stderr)
        if error.detail:
            print(f"  database said: {error.detail}", file=sys.stderr)
    raise typer.Exit(int(error.exit_code))


def _toolkit(database_url: str | None, as_json: bool, lock_timeout: float = 60.0) -> Any:
    from workspaces.db import parse_url
    from workspaces.schema.revisions import MigrationSet
    from workspaces.schema.toolkit import Toolkit
    from workspaces.settings import get_settings

    settings = get_settings()
    url = parse_url(database_url or settings.database_url)
    migrations = MigrationSet(settings.workspaces_migrations_dir)

    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    return Toolkit(url, migrations, say=say, lock_timeout=lock_timeout)


def _finish(result: Any, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"ok": result.exit_code == 0, "exit_code": int(result.exit_code),
                          **result.data}, indent=2, default=str))
    else:
        for line in result.lines:
            print(line)
    raise typer.Exit(int(result.exit_code))


@contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    """Turn our errors (and only them) into the documented output and exit code."""
    try:
        yield
    except Error as error:
        _fail(error, as_json)


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
    with _guard(as_json):
        report = _toolkit(database_url, as_json).status()
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
    with _guard(as_json):
        _finish(_toolkit(database_url, as_json, lock_timeout).deploy(to=to), as_json)


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
    with _guard(as_json):
        if (applied is None) == (rolled_back is None):
            raise SchemaError("bad_arguments", "Give exactly one of --applied ID or "
                              "--rolled-back ID.")
        toolkit = _toolkit(database_url, as_json, lock_timeout)
        migration_id = applied or rolled_back
        assert migration_id is not None  # noqa: S101 (narrowing for mypy)
        _finish(toolkit.resolve(migration_id, applied=applied is not None, force=force), as_json)


@db_app.command()
def verify(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Compare the live schema with what the applied migrations should have produced."""
    with _guard(as_json):
        _finish(_toolkit(database_url, as_json).verify(), as_json)


@db_app.command()
def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL only.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
    lock_timeout: LockTimeout = 60.0,
) -> None:
    """Create the objects applied migrations made that are missing, in one transaction."""
    with _guard(as_json):
        _finish(_toolkit(database_url, as_json, lock_timeout).repair(dry_run=dry_run), as_json)


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

    with _guard(as_json):
        toolkit = _toolkit(database_url, as_json, lock_timeout)
        _finish(toolkit.rollback(migration_id, confirm=confirm), as_json)


@db_app.command()
def baseline(
    database_url: DatabaseUrl = None, as_json: AsJson = False, lock_timeout: LockTimeout = 60.0
) -> None:
    """Adopt an existing database: record as applied each migration whose objects exist."""
    with _guard(as_json):
        _finish(_toolkit(database_url, as_json, lock_timeout).baseline(), as_json)


@db_app.command()
def execute(
    file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False,
                    help="SQL script to run.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the script from stdin.")] = False,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Run an SQL script in one transaction; on error nothing changes."""
    with _guard(as_json):
        if (file is None) == (not stdin):
            raise SchemaError("bad_arguments", "Give exactly one of --file PATH or --stdin.")
        script = file.read_text() if file is not None else sys.stdin.read()
        _finish(_toolkit(database_url, as_json).execute(script), as_json)


@db_app.command()
def sql(
    migration_id: Annotated[str, typer.Argument(metavar="ID")],
    down: Annotated[bool, typer.Option("--down", help="The down step instead.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a migration's SQL for the configured kind of database (connects to nothing)."""
    with _guard(False):
        print(_toolkit(database_url, False).sql(migration_id, down=down), end="")


@db_app.command()
def new(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    empty: Annotated[bool, typer.Option("--empty", help="Write an empty revision.")] = False,
) -> None:
    """Write a new revision from the difference between the models and the head schema."""
    with _guard(False):
        _finish(_toolkit("sqlite://", False).new(message, empty=empty), False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(
        "--migrate", help="Apply pending migrations (under the deploy lock) before starting.",
    )] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the web server after checking the schema (SQLite: pending migrations are applied)."""
    import os

    import uvicorn

    from workspaces.settings import get_settings
    from workspaces.web.app import create_app

    if database_url:
        os.environ["DATABASE_URL"] = database_url  # worker processes read settings again
        get_settings.cache_clear()
    with _guard(False):
        email_notice = _email_notice(get_settings())  # before the database is touched
    with _guard(False):
        toolkit = _toolkit(database_url, False)
        report = toolkit.status()
        embedded = toolkit.url.get_backend_name() == "sqlite"
        if report.exit_code == Exit.PENDING and (migrate or embedded):
            result = toolkit.deploy()
            for line in result.lines:
                print(line)
            report = toolkit.status()
        if report.exit_code != Exit.OK:
            for problem in report.problems:
                print(f"[{problem.code}] {problem.message}", file=sys.stderr)
            worst = max(report.problems, key=lambda p: p.exit_code)
            fix = ("workspaces db deploy (or start with --migrate)"
                   if worst.exit_code == Exit.PENDING else worst.fix)
            raise SchemaOutOfDate(
                "Refusing to start: the database schema does not match this code.",
                fix=f"{fix}; `workspaces db status` explains each problem",
                exit_code=report.exit_code,
            )
    with _guard(False):
        application = create_app()
    if email_notice:
        print(email_notice, file=sys.stderr, flush=True)
    print(f"Serving on http://{host}:{port} (database {report.database})", flush=True)
    # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; the
    # application reads it only from TRUSTED_PROXIES (web.deps.client_address).
    if workers > 1:
        uvicorn.run("workspaces.web.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="info", proxy_headers=False)
    else:
        uvicorn.run(application, host=host, port=port, log_level="info", proxy_headers=False)


def _email_notice(settings: Any) -> str | None:
    """What `serve` says about email at start: a loud warning when production may lose mail.

    Raises EmailMisconfigured for EMAIL_BACKEND=smtp without SMTP_URL.
    """
    from workspaces.db import parse_url

    if settings.email_mode == "smtp":
        return None
    if settings.email_backend or parse_url(settings.database_url).get_backend_name() == "sqlite":
        return ("EMAIL_BACKEND=console: emails are written to this log and sent to nobody "
                "(development; set SMTP_URL to deliver them).")
    return "\n".join(f"WARNING:  {line}" for line in (
        "EMAILS WILL NOT BE DELIVERED: SMTP_URL is not set, so EMAIL_BACKEND is console.",
        "Every email, invite link included, is written to this log and sent to nobody.",
        "The database is PostgreSQL, so this looks like production.",
        "To deliver emails: set SMTP_URL (smtp://user:pass@host:587 or smtps://host:465).",
        "If writing them to the log is intended: set EMAIL_BACKEND=console to say so.",
    ))


users_app = typer.Typer(no_args_is_help=True, help="Operator commands for accounts.")
workspaces_app = typer.Typer(no_args_is_help=True, help="Operator commands for workspaces.")
invites_app = typer.Typer(no_args_is_help=True, help="Operator commands for invitations.")
app.add_typer(users_app, name="users")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(invites_app, name="invites")


def _operate(database_url: str | None, as_json: bool, work: Any) -> Any:
    """Run `work(conn, settings)` in one transaction on the server's engine; print errors."""
    import asyncio

    from workspaces.db import create_app_engine, parse_url
    from workspaces.settings import get_settings

    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})

    async def run() -> Any:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn, settings)
        finally:
            await engine.dispose()

    with _guard(as_json):
        return asyncio.run(run())


def _print(data: Any, as_json: bool, line: str) -> None:
    from dataclasses import asdict, is_dataclass

    if as_json:
        if isinstance(data, list):
            items: Any = [asdict(d) for d in data]
        else:
            items = asdict(data) if is_dataclass(data) and not isinstance(data, type) else data
        print(json.dumps(items, indent=2, default=str))
    else:
        print(line)


async def _owner_access(conn: Any, slug: str, by: str | None) -> Any:
    from workspaces.workspaces.service import operator_access

    return await operator_access(conn, slug=slug, email=by)


Workspace = Annotated[str, typer.Option("--workspace", "-w", help="The workspace's slug.")]
ActingAs = Annotated[str | None, typer.Option(
    "--by", help="Act as this member (default: the workspace's first owner).")]


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The address to sign in with.")],
    name: Annotated[str, typer.Option(help="The person's name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Create an account."""
    from workspaces.accounts.service import NewAccount, check_password, create_account
    from workspaces.security import hash_password
    from workspaces.validation import clean_name, normalize_email

    def account() -> NewAccount:  # checked and hashed before the transaction opens
        address, display_name = normalize_email(email), clean_name(name, field="name")
        check_password(password)
        return NewAccount(address, display_name, hash_password(password))

    with _guard(as_json):
        new = account()
    user = _operate(database_url, as_json, lambda conn, _settings: create_account(
        conn, account=new))
    _print(user, as_json, f"Created {user.email} ({user.id}).")


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Option(help="The workspace's name.")],
    owner: Annotated[str, typer.Option(help="Email of the account that will own it.")],
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Create a workspace owned by an existing account."""
    from workspaces.accounts.service import get_user_by_email
    from workspaces.errors import NotFound
    from workspaces.validation import normalize_email
    from workspaces.workspaces.service import create_workspace

    async def work(conn: Any, _settings: Any) -> Any:
        user = await get_user_by_email(conn, normalize_email(owner))
        if user is None:
            raise NotFound(f"No account for {owner}; create it with `workspaces users create`.",
                           code="user_not_found")
        return await create_workspace(conn, name=name, owner=user, limit=None)

    workspace = _operate(database_url, as_json, work)
    _print(workspace, as_json, f"Created workspace {workspace.name} (slug {workspace.slug}).")


@invites_app.command("create")
def invites_create(
    workspace: Workspace,
    email: Annotated[str, typer.Option(help="Who to invite.")],
    role: Annotated[str, typer.Option(help="owner, admin or member.")] = "member",
    days: Annotated[int | None, typer.Option(help="Days until it expires (1-30).")] = None,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Invite someone; the email is queued and sent by a running `workspaces serve`."""
    from workspaces.invites.service import create_invite

    async def work(conn: Any, settings: Any) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await create_invite(conn, access=access, email=email, role=role,
                                   expires_in_days=days, settings=settings)

    issued = _operate(database_url, as_json, work)
    _print(issued, as_json, f"Invited {issued.invite.email} as {issued.invite.role} "
           f"(invite {issued.invite.id}); email queued.\nLink: {issued.accept_url}")


@invites_app.command("list")
def invites_list(
    workspace: Workspace,
    status: Annotated[str | None, typer.Option(
        help="pending, expired, accepted, revoked or declined.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 100,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """List a workspace's invites, newest first."""
    from workspaces.invites.service import list_invites

    async def work(conn: Any, _settings: Any) -> Any:
        access = await _owner_access(conn, workspace, by)
        items, _ = await list_invites(conn, access=access, status=status, limit=limit,
                                      cursor=None)
        return items

    items = _operate(database_url, as_json, work)
    lines = [f"{i.id}  {i.status:<8}  {i.role:<6}  {i.email}  expires {i.expires_at:%Y-%m-%d}"
             for i in items]
    _print(items, as_json, "\n".join(lines) or "No invites.")


@invites_app.command("revoke")
def invites_revoke(
    invite_id: Annotated[str, typer.Argument(metavar="ID")], workspace: Workspace,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Revoke a pending invite: its link stops working."""
    import uuid

    from workspaces.invites.service import revoke_invite

    async def work(conn: Any, _settings: Any) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await revoke_invite(conn, access=access, invite_id=uuid.UUID(invite_id))

    invite = _operate(database_url, as_json, work)
    _print(invite, as_json, f"Revoked the invite of {invite.email}.")


@invites_app.command("resend")
def invites_resend(
    invite_id: Annotated[str, typer.Argument(metavar="ID")], workspace: Workspace,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Send a pending or expired invite again with a new link and expiry."""
    import uuid

    from workspaces.invites.service import resend_invite

    async def work(conn: Any, settings: Any) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await resend_invite(conn, access=access, invite_id=uuid.UUID(invite_id),
                                   settings=settings)

    issued = _operate(database_url, as_json, work)
    _print(issued, as_json, f"Re-sent the invite of {issued.invite.email}; email queued.\n"
           f"Link: {issued.accept_url}")


@app.command()
def smoke(
    base_url: Annotated[str, typer.Option("--base-url", help="The deployment to check.")],
    email_domain: Annotated[str, typer.Option(
        help="Domain of the throwaway addresses (their emails are expected to bounce).",
    )] = "example.com",
) -> None:
    """Post-deploy check: sign up, invite, accept, revoke, verify, clean up; exit 0 if all pass."""
    from workspaces.smoke import Smoke

    ok = Smoke(base_url, email_domain=email_domain).run()
    raise typer.Exit(0 if ok else 1)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    app()
