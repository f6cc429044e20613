"""Operator commands: `workspaces users|workspaces|invites ...`, acting as a member, and
`workspaces events list`, the instance's feed, and `workspaces webhooks ...` on endpoints of
any scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from workspaces.cli.common import AsJson, DatabaseUrl, done, guard, operate, show

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from workspaces.settings import Settings
    from workspaces.workspaces.service import Access

users_app = typer.Typer(no_args_is_help=True, help="Operator commands for accounts.")
workspaces_app = typer.Typer(no_args_is_help=True, help="Operator commands for workspaces.")
invites_app = typer.Typer(no_args_is_help=True, help="Operator commands for invitations.")


async def _owner_access(conn: AsyncConnection, slug: str, by: str | None) -> Access:
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
    from workspaces.validation import check_all, clean_name, normalize_email

    def account() -> NewAccount:  # checked and hashed before the transaction opens
        address, display_name, _ = check_all(lambda: normalize_email(email),
                                             lambda: clean_name(name, field="name"),
                                             lambda: check_password(password))
        return NewAccount(address, display_name, hash_password(password))

    with guard(as_json):
        new = account()
    from workspaces.events.tell import Actor

    user = operate(database_url, as_json, lambda conn, _settings: create_account(
        conn, account=new, actor=Actor("operator")))
    show(user, as_json, f"Created {user.email} ({user.id}).")


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Option(help="The workspace's name.")],
    owner: Annotated[str, typer.Option(help="Email of the account that will own it.")],
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Create a workspace owned by an existing account."""
    from workspaces.workspaces.service import create_for_operator

    workspace = operate(database_url, as_json, lambda conn, _settings: create_for_operator(
        conn, name=name, owner_email=owner))
    show(workspace, as_json, f"Created workspace {workspace.name} (slug {workspace.slug}).")


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

    async def work(conn: AsyncConnection, settings: Settings) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await create_invite(conn, access=access, email=email, role=role,
                                   expires_in_days=days, settings=settings)

    issued = operate(database_url, as_json, work)
    show(issued, as_json, f"Invited {issued.invite.email} as {issued.invite.role} "
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

    async def work(conn: AsyncConnection, _settings: Settings) -> Any:
        access = await _owner_access(conn, workspace, by)
        items, _ = await list_invites(conn, access=access, status=status, limit=limit,
                                      cursor=None)
        return items

    items = operate(database_url, as_json, work)
    lines = [f"{i.id}  {i.status:<8}  {i.role:<6}  {i.email}  expires {i.expires_at:%Y-%m-%d}"
             for i in items]
    show(items, as_json, "\n".join(lines) or "No invites.")


@invites_app.command("revoke")
def invites_revoke(
    invite_id: Annotated[str, typer.Argument(metavar="ID")], workspace: Workspace,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Revoke a pending invite: its link stops working."""
    import uuid

    from workspaces.invites.service import revoke_invite

    async def work(conn: AsyncConnection, _settings: Settings) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await revoke_invite(conn, access=access, invite_id=uuid.UUID(invite_id))

    invite = operate(database_url, as_json, work)
    show(invite, as_json, f"Revoked the invite of {invite.email}.")


@invites_app.command("resend")
def invites_resend(
    invite_id: Annotated[str, typer.Argument(metavar="ID")], workspace: Workspace,
    by: ActingAs = None, database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Send a pending or expired invite again with a new link and expiry."""
    import uuid

    from workspaces.invites.service import resend_invite

    async def work(conn: AsyncConnection, settings: Settings) -> Any:
        access = await _owner_access(conn, workspace, by)
        return await resend_invite(conn, access=access, invite_id=uuid.UUID(invite_id),
                                   settings=settings)

    issued = operate(database_url, as_json, work)
    show(issued, as_json, f"Re-sent the invite of {issued.invite.email}; email queued.\n"
           f"Link: {issued.accept_url}")


events_app = typer.Typer(no_args_is_help=True, help="The event feed, for operators.")


@events_app.command("list")
def events_list(
    after: Annotated[str | None, typer.Option(
        help="Read on after this cursor (the last `next:` line gives it).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 100,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Only this event type (repeat for several).")] = None,
    workspace: Annotated[str | None, typer.Option(
        "--workspace", "-w", help="Only this workspace's events (default: every event, "
                                  "user.* too).")] = None,
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """The instance's events, oldest first, and the command that reads on from the last."""
    import json
    import shlex

    from workspaces.cli.common import Target
    from workspaces.errors import Gone
    from workspaces.events import feed

    target = Target.of(database_url)

    def command(cursor: str | None) -> str:
        """This command, reading on from `cursor` (from the oldest event kept when None)."""
        words = ["workspaces", "events", "list"]
        words += ["--after", cursor] if cursor else []
        words += ["--workspace", workspace] if workspace else []
        words += [word for kind in types or [] for word in ("--type", kind)]
        words += ["--limit", str(limit)] if limit != 100 else []
        words += ["--json"] if as_json else []
        return shlex.join(words)

    async def work(conn: AsyncConnection, settings: Settings) -> feed.FeedPage:
        days = settings.event_retention_days
        try:
            if workspace is None:
                return await feed.read(conn, workspace_id=None, after=after, limit=limit,
                                       types=types, retention_days=days)
            access = await _owner_access(conn, workspace, None)
            return await feed.read_workspace(conn, access=access, after=after, limit=limit,
                                             types=types, retention_days=days)
        except Gone as error:  # cursor_expired: start over from the oldest event kept
            error.fix = command(None)  # operate's guard names the database in its next steps
            raise

    page = operate(database_url, as_json, work)
    steps = [target.step(command(page.next_cursor))] if page.next_cursor else []
    if as_json:
        print(json.dumps({"ok": True, "items": page.items, "next_cursor": page.next_cursor,
                          "has_more": page.has_more, "next": steps}, indent=2))
        return
    for event in page.items:
        where = (event["workspace"] or {}).get("slug") or "-"
        actor = event["actor"]
        print(f"{event['occurred_at']}  {event['type']:<32}  {where:<20}  "
              f"{actor.get('email') or actor.get('name') or actor['type']}  {event['id']}")
    if not page.items:
        print("No new events." if after else "No events yet.")
    target.print_steps(steps)


webhooks_app = typer.Typer(no_args_is_help=True, help=(
    "Operator commands for webhook endpoints: the instance's (every workspace's events and "
    "the user.* ones) and any workspace's."))
EndpointId = Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id.")]


def _endpoint_id(raw: str) -> Any:
    import uuid

    from workspaces.errors import NotFound

    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{raw!r} is not an endpoint id; `workspaces webhooks list` shows "
                       "them.", code="webhook_not_found") from None


def _since(raw: str) -> Any:
    """--since: a time (ISO 8601; without a zone, UTC) or a duration back from now (90m, 6h,
    2d)."""
    import re
    from datetime import UTC, datetime, timedelta

    from workspaces import clock
    from workspaces.errors import InvalidInput

    ago = re.fullmatch(r"(\d+)([mhd])", raw.strip())
    if ago:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[ago[2]]
        return clock.now() - timedelta(**{unit: int(ago[1])})
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"--since {raw!r} is neither a time such as 2026-12-01T09:30:00Z "
                           "nor a duration such as 6h.", code="invalid_since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stamp(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _line(e: Any) -> str:
    state = "enabled" if e.enabled else "disabled"
    events = ",".join(e.events) if e.events is not None else "all"
    return f"{e.id}  {e.workspace_slug or '(instance)'}  {state:<8}  {events}  {e.url}"


@webhooks_app.command("create")
def webhooks_create(
    url: Annotated[str, typer.Option(help="Where to POST events (https; http only to "
                                          "WEBHOOK_ALLOWED_NETWORKS, or for --workspace to "
                                          "WORKSPACE_WEBHOOK_ALLOWED_NETWORKS).")],
    events: Annotated[list[str] | None, typer.Option(
        "--events", help="An event type to deliver (repeat, or comma-separate; default: "
                         "every type).")] = None,
    workspace: Annotated[str | None, typer.Option(
        "--workspace", "-w", help="A workspace's endpoint (default: the instance's).")] = None,
    description: Annotated[str, typer.Option(help="What receives it.")] = "",
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Add an endpoint; prints its signing secret, shown only this once."""
    from workspaces.webhooks import service

    types = [t.strip() for e in events for t in e.split(",") if t.strip()] if events else None

    async def work(conn: AsyncConnection, settings: Settings) -> Any:
        owner = await _owner_access(conn, workspace, None) if workspace else service.OPERATOR
        return await service.create_endpoint(conn, owner=owner, url=url, events=types,
                                             description=description, settings=settings)

    made = operate(database_url, as_json, work)
    scope = f"workspace {workspace}" if workspace else "the instance"
    done(database_url, as_json,
         f"Created webhook endpoint {made.endpoint.id} of {scope} -> {made.endpoint.url}\n"
         f"Signing secret (shown only now; give it to the receiver): {made.secret}",
         ["workspaces webhooks list" + (f" --workspace {workspace}" if workspace else "")],
         endpoint=made.endpoint, secret=made.secret)


@webhooks_app.command("list")
def webhooks_list(
    workspace: Annotated[str | None, typer.Option(
        "--workspace", "-w", help="Only this workspace's (default: every endpoint).")] = None,
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Every endpoint, the instance's first: id, scope, state, event types, URL."""
    from workspaces.webhooks import service

    async def work(conn: AsyncConnection, _settings: Settings) -> Any:
        owner = await _owner_access(conn, workspace, None) if workspace else service.OPERATOR
        return await service.list_endpoints(conn, owner=owner)

    items = operate(database_url, as_json, work)
    done(database_url, as_json, "\n".join(_line(e) for e in items) or "No webhook endpoints.",
         [], endpoints=items)


def _switch(endpoint_id: str, enabled: bool, database_url: str | None, as_json: bool) -> None:
    from workspaces.webhooks import service

    async def work(conn: AsyncConnection, _settings: Settings) -> Any:
        key = _endpoint_id(endpoint_id)
        before = await service.get_endpoint(conn, owner=service.OPERATOR, endpoint_id=key)
        after = await service.set_enabled(conn, owner=service.OPERATOR, endpoint_id=key,
                                          enabled=enabled)
        return before, after

    before, after = operate(database_url, as_json, work)
    if enabled:
        steps = [f"workspaces webhooks replay {after.id} --since {_stamp(before.disabled_at)}"
                 "  # send what it missed while disabled"] if before.disabled_at else []
        text = f"Enabled webhook endpoint {after.id} ({after.url})."
    else:
        steps = [f"workspaces webhooks enable {after.id}  # when its receiver works again"]
        text = (f"Disabled webhook endpoint {after.id} ({after.url}): nothing is queued for it "
                "until it is enabled.")
    done(database_url, as_json, text, steps, endpoint=after)


@webhooks_app.command("disable")
def webhooks_disable(endpoint_id: EndpointId, database_url: DatabaseUrl = None,
                     as_json: AsJson = False) -> None:
    """Stop delivering to an endpoint (of any scope)."""
    _switch(endpoint_id, False, database_url, as_json)


@webhooks_app.command("enable")
def webhooks_enable(endpoint_id: EndpointId, database_url: DatabaseUrl = None,
                    as_json: AsJson = False) -> None:
    """Deliver to an endpoint again (of any scope)."""
    _switch(endpoint_id, True, database_url, as_json)


@webhooks_app.command("replay")
def webhooks_replay(
    endpoint_id: EndpointId,
    since: Annotated[str, typer.Option(help="A time (2026-12-01T09:30:00Z; UTC without a "
                                            "zone) or a duration back from now (6h, 2d).")],
    database_url: DatabaseUrl = None, as_json: AsJson = False,
) -> None:
    """Queue again every event since a time that the endpoint would receive (its scope and
    types, as far back as events are kept), with the events' own ids."""
    from workspaces.webhooks import service

    async def work(conn: AsyncConnection, settings: Settings) -> Any:
        return await service.replay(conn, owner=service.OPERATOR,
                                    endpoint_id=_endpoint_id(endpoint_id), since=_since(since),
                                    settings=settings)

    replayed = operate(database_url, as_json, work)
    done(database_url, as_json,
         f"Queued {replayed.queued} events since {_stamp(replayed.since)} for endpoint "
         f"{endpoint_id}; a running `workspaces serve` delivers them.", [],
         queued=replayed.queued, since=_stamp(replayed.since))
