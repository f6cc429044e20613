"""The `workspaces` command line. Thin: parse arguments, call the toolkit or a service, print
the result. Commands live by group: cli/db.py (the schema toolkit), cli/serve.py, cli/operate.py
(users, workspaces, invites, webhooks), cli/keys.py (signing keys), cli/clients.py (OpenID
Connect clients); what they share in cli/common.py."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from workspaces import __version__
from workspaces.cli.clients import clients_app
from workspaces.cli.common import AsJson
from workspaces.cli.db import db_app
from workspaces.cli.keys import keys_app
from workspaces.cli.operate import events_app, invites_app, users_app, webhooks_app, workspaces_app
from workspaces.cli.serve import serve


def _flags_take_no_value() -> None:
    """Typer 0.29 shows every flag (--json, --yes, --help) as taking a `<bool>` value in the
    help table, which invites `--json true` (an error). A flag's type column stays empty."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

app = typer.Typer(no_args_is_help=True, add_completion=True,
                  help="Workspaces: members and invitations, and the schema toolkit.")


def _print_version(wanted: bool) -> None:
    if wanted:
        print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Workspaces: members and invitations, and the schema toolkit."""

app.add_typer(db_app, name="db")
app.command()(serve)
app.add_typer(users_app, name="users")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(invites_app, name="invites")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(keys_app, name="keys")
app.add_typer(clients_app, name="clients")


@app.command()
def smoke(
    base_url: Annotated[str, typer.Option("--base-url", help="The deployment to check.")],
    email_domain: Annotated[str, typer.Option(
        help="Domain of the throwaway addresses (their emails are expected to bounce).",
    )] = "example.com",
    as_json: AsJson = False,
) -> None:
    """Post-deploy check: sign up, invite, accept, revoke, verify, clean up; exit 0 if all pass."""
    import json

    from workspaces.smoke import Smoke

    check = Smoke(base_url, email_domain=email_domain,
                  say=(lambda _line: None) if as_json else print)
    ok = check.run()
    if as_json:
        print(json.dumps({"ok": ok, "base_url": base_url, "steps": [
            {"name": name, "ok": passed, "detail": detail}
            for name, passed, detail in check.results]}, indent=2))
    raise typer.Exit(0 if ok else 1)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    """The `workspaces` program. A wrong command line exits 1 like every other refusal (Typer
    would exit 2, which `db status` means as "pending"), as `error[usage]` or, with --json,
    the error document."""
    import json
    import sys

    command = typer.main.get_command(app)
    try:
        # Named `workspaces` however it was started (`python -m workspaces` too), so the
        # completion scripts (--show-completion) always complete the installed command.
        code = command.main(prog_name="workspaces", complete_var="_WORKSPACES_COMPLETE",
                            standalone_mode=False)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        code = 1
    except typer.TyperException as exc:  # a usage error: unknown option, bad value...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if "--json" in sys.argv[1:]:
            print(json.dumps({"ok": False, "error": {
                "code": "usage", "message": message, "next": [], "exit_code": 1}}, indent=2))
        else:
            if hasattr(exc, "show"):
                exc.show()
            else:
                print(f"error[usage]: {message}", file=sys.stderr)
        code = 1
    except Exception as exc:
        from pydantic import ValidationError  # only now: `--help` has no settings to load

        if not isinstance(exc, ValidationError):
            raise
        # A setting in the environment or .env is invalid.
        from workspaces.settings import settings_problems

        problems = settings_problems(exc)
        message = "Invalid settings (environment variables or .env): " + " ".join(problems)
        if "--json" in sys.argv[1:]:
            print(json.dumps({"ok": False, "error": {
                "code": "invalid_settings", "message": message, "problems": problems,
                "next": [], "exit_code": 1}}, indent=2))
        else:
            print("error[invalid_settings]: fix these settings (environment variables or "
                  ".env):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
