"""The `workspaces` command line. Thin: parse arguments, call the toolkit or a service, print
the result. Commands live by group: cli/db.py (the schema toolkit), cli/serve.py, cli/operate.py
(users, workspaces, invites); what they share in cli/common.py."""

from __future__ import annotations

from typing import Annotated

import typer

from workspaces import __version__
from workspaces.cli.db import db_app
from workspaces.cli.operate import invites_app, users_app, workspaces_app
from workspaces.cli.serve import serve

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Workspaces: members and invitations, and the schema toolkit.")
app.add_typer(db_app, name="db")
app.command()(serve)
app.add_typer(users_app, name="users")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(invites_app, name="invites")


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
