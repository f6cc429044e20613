"""`workspaces clients ...`: the operator's registry of OpenID Connect clients (relying parties
and products' backends). The rules are oauth/clients.py's; this parses and prints."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from workspaces.cli.common import AsJson, DatabaseUrl, Target, done, guard, operate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from workspaces.oauth.clients import ClientInfo
    from workspaces.settings import Settings

clients_app = typer.Typer(no_args_is_help=True, help=(
    "Operator commands for the apps that sign users in with Workspaces (OpenID Connect "
    "clients) and the backends that use service credentials."))

ClientId = Annotated[str, typer.Argument(metavar="ID", help="The client_id (wsc_...).")]
Uris = list[str] | None
Name = Annotated[str, typer.Option(help="The app's name, as users see it when asked to "
                                        "allow it.")]
RedirectUris = Annotated[Uris, typer.Option(
    "--redirect-uri", help="Where the browser returns after sign-in, matched exactly (repeat "
                           "for several): https, http only to 127.0.0.1, [::1] or localhost; "
                           "a --public app may use com.example.app:/callback.")]
LogoutUris = Annotated[Uris, typer.Option(
    "--post-logout-redirect-uri", help="Where the browser may go after signing out through "
                                       "us (repeat for several); the same rules.")]
Scopes = Annotated[list[str] | None, typer.Option(
    "--scope", help="A scope it may ask for (repeat, or space-separate; default: openid email "
                    "profile workspaces workspace offline_access). Service scopes "
                    "(workspaces:read, members:read, members:write, invites:write, "
                    "events:read, webhooks:write) let a confidential client act on its "
                    "own (client_credentials).")]
Workspaces = Annotated[list[str] | None, typer.Option(
    "--workspace", "-w", help="Its service tokens act only on this workspace (slug; repeat "
                              "for several; default: every workspace).")]


def _secret_lines(client_id: str, secret: str) -> list[str]:
    return [f"client_secret: {secret}",
            "The secret is shown only this once, and stored only as a hash: put it in the "
            f"app's secret store now (`workspaces clients rotate-secret {client_id}` makes a "
            "new one if it is lost)."]


def _facts(c: ClientInfo) -> list[str]:
    from workspaces.oauth.scopes import SERVICE_SCOPES

    reach = "every workspace" if c.workspaces is None else (
        ", ".join(c.workspaces) or "none (its workspaces were deleted)")
    service = any(s in SERVICE_SCOPES for s in c.scopes)
    kind = "public (no secret; PKCE required)" if c.public else "confidential"
    consent = "skipped (trusted, first-party)" if c.trusted else "asked once per user"
    return [
        f"client_id:     {c.id}",
        f"name:          {c.name}",
        f"type:          {kind}",
        f"consent:       {consent}",
        f"scopes:        {' '.join(c.scopes)}",
        *[f"redirect URI:  {uri}" for uri in c.redirect_uris],
        *[f"after logout:  {uri}" for uri in c.post_logout_redirect_uris],
        *([f"service reach: {reach}"] if service else []),
        f"created:       {c.created_at:%Y-%m-%d %H:%M} UTC",
        *([f"secret made:   {c.secret_rotated_at:%Y-%m-%d %H:%M} UTC"]
          if c.secret_rotated_at else []),
    ]


def _issuer_hint(settings: Settings) -> str:
    from workspaces.oauth.tokens import issuer as issuer_of

    issuer = issuer_of(settings)
    return (f"The app's OpenID Connect issuer is BASE_URL, here {issuer}; it finds everything "
            f"else at {issuer}/.well-known/openid-configuration.")


@clients_app.command("create")
def clients_create(
    name: Name,
    redirect_uri: RedirectUris = None,
    post_logout_redirect_uri: LogoutUris = None,
    public: Annotated[bool, typer.Option(
        "--public", help="A native or browser app, which cannot keep a secret: no secret, "
                         "PKCE required.")] = False,
    trusted: Annotated[bool, typer.Option(
        "--trusted", help="A first-party app: users are not asked to allow it.")] = False,
    scope: Scopes = None, workspace: Workspaces = None,
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Register a client; prints its client_id and, for a confidential one, its secret,
    shown only this once."""
    from workspaces.oauth.clients import create_client

    async def work(conn: AsyncConnection, settings: Settings) -> Any:
        made = await create_client(
            conn, name=name, redirect_uris=redirect_uri or [],
            post_logout_redirect_uris=post_logout_redirect_uri or [], public=public,
            trusted=trusted, scopes=scope, workspace_slugs=workspace)
        return made, _issuer_hint(settings)

    made, hint = operate(database_url, as_json, work)
    client = made.client
    lines = [f"Registered {'public' if client.public else 'confidential'} client "
             f"{client.name}.", *_facts(client)]
    if made.secret:
        lines += _secret_lines(client.id, made.secret)
    done(database_url, as_json, "\n".join(lines), [f"workspaces clients show {client.id}"],
         [hint], client=client, client_secret=made.secret)


@clients_app.command("list")
def clients_list(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Every client, oldest first: client_id, type, consent, scopes, name."""
    from workspaces.oauth.clients import list_clients

    items = operate(database_url, as_json, lambda conn, _settings: list_clients(conn))
    lines = [f"{c.id}  {'public' if c.public else 'confidential':<12}  "
             f"{'trusted' if c.trusted else 'consent':<7}  {' '.join(c.scopes)}  {c.name}"
             for c in items]
    done(database_url, as_json, "\n".join(lines) or "No clients registered.", [],
         clients=items)


@clients_app.command("show")
def clients_show(client_id: ClientId, database_url: DatabaseUrl = None,
                 as_json: AsJson = False) -> None:
    """One client: its type, scopes, redirect URIs and reach (never its secret)."""
    from workspaces.oauth.clients import show_client

    client = operate(database_url, as_json,
                     lambda conn, _settings: show_client(conn, client_id=client_id))
    done(database_url, as_json, "\n".join(_facts(client)), [], client=client)


@clients_app.command("update")
def clients_update(
    client_id: ClientId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    redirect_uri: Annotated[Uris, typer.Option(
        "--redirect-uri", help="Replace the redirect URIs with these (repeat).")] = None,
    add_redirect_uri: Annotated[Uris, typer.Option(
        "--add-redirect-uri", help="Add a redirect URI (repeat).")] = None,
    remove_redirect_uri: Annotated[Uris, typer.Option(
        "--remove-redirect-uri", help="Remove a redirect URI (repeat).")] = None,
    post_logout_redirect_uri: Annotated[Uris, typer.Option(
        "--post-logout-redirect-uri", help="Replace the post-logout redirect URIs with "
                                           "these (repeat).")] = None,
    add_post_logout_redirect_uri: Annotated[Uris, typer.Option(
        "--add-post-logout-redirect-uri", help="Add a post-logout redirect URI.")] = None,
    remove_post_logout_redirect_uri: Annotated[Uris, typer.Option(
        "--remove-post-logout-redirect-uri", help="Remove a post-logout redirect URI.")
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Replace its scopes with these (repeat, or space-separate).")] = None,
    trusted: Annotated[bool | None, typer.Option(
        "--trusted/--untrusted", help="Skip users' consent (first-party), or ask it.")
    ] = None,
    workspace: Annotated[list[str] | None, typer.Option(
        "--workspace", "-w", help="Its service tokens act only on these workspaces (slugs; "
                                  "replaces the list).")] = None,
    all_workspaces: Annotated[bool, typer.Option(
        "--all-workspaces", help="Its service tokens act on every workspace again.")
    ] = False,
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Change a client; what is not given stays. A public client stays public."""
    from workspaces.errors import InvalidInput
    from workspaces.oauth.clients import KEEP, UriEdit, update_client

    def edit(replace: Uris, add: Uris, remove: Uris) -> UriEdit:
        return UriEdit(None if replace is None else tuple(replace), tuple(add or ()),
                       tuple(remove or ()))

    with guard(as_json):
        if all_workspaces and workspace:
            raise InvalidInput("Give either --workspace or --all-workspaces, not both.",
                               code="invalid_workspaces", field="workspaces")
    reach = None if all_workspaces else workspace or KEEP
    client = operate(database_url, as_json, lambda conn, _settings: update_client(
        conn, client_id=client_id, name=name,
        redirect_uris=edit(redirect_uri, add_redirect_uri, remove_redirect_uri),
        post_logout_redirect_uris=edit(post_logout_redirect_uri, add_post_logout_redirect_uri,
                                       remove_post_logout_redirect_uri),
        scopes=scope, trusted=trusted, workspace_slugs=reach))
    done(database_url, as_json, "\n".join([f"Client {client.id} as it is now:",
                                            *_facts(client)]), [], client=client)


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: ClientId, database_url: DatabaseUrl = None,
                          as_json: AsJson = False) -> None:
    """A new secret for a confidential client, shown only this once. The old one stops
    working now, and so do the service tokens it obtained; users stay signed in."""
    from workspaces.oauth.clients import rotate_secret

    made = operate(database_url, as_json,
                   lambda conn, _settings: rotate_secret(conn, client_id=client_id))
    done(database_url, as_json, "\n".join([
        f"New secret for {made.client.name} ({made.client.id}). The old one stopped working "
        "now, and so did the service tokens it obtained; users stay signed in.",
        *_secret_lines(made.client.id, made.secret or "")]), [],
        client=made.client, client_secret=made.secret)


@clients_app.command("delete")
def clients_delete(
    client_id: ClientId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Delete a client with its users' consents and its grants: every token it holds stops
    working. Asks first (or --yes)."""
    from workspaces.errors import Error
    from workspaces.oauth.clients import delete_client, usage

    target = Target.of(database_url)
    plan = operate(database_url, as_json,
                   lambda conn, _settings: usage(conn, client_id=client_id))
    out = sys.stderr if as_json else sys.stdout
    users = f"{plan.consents} user{'s' if plan.consents != 1 else ''}"
    grants = f"{plan.grants} grant{'s' if plan.grants != 1 else ''}"
    print(f"This will delete the client {plan.client.name} ({plan.client.id}), the consents "
          f"of {users} and {grants} in force (their tokens stop working).", file=out,
          flush=True)
    if not yes:
        with guard(as_json, target):
            if not sys.stdin.isatty():
                raise Error("Deleting a client needs confirmation, but there is no terminal "
                            "to ask.", code="confirmation_required",
                            fix=f"workspaces clients delete {client_id} --yes  "
                                "# once you have read what it deletes, above")
        if not typer.confirm("Proceed?", default=False, err=as_json):
            print("Not deleted.", file=sys.stderr)
            raise typer.Exit(1)
    gone = operate(database_url, as_json,
                   lambda conn, _settings: delete_client(conn, client_id=client_id))
    done(database_url, as_json, f"Deleted the client {gone.client.name} ({gone.client.id}).",
         [], client=gone.client, consents=gone.consents, grants=gone.grants)
