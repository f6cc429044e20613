"""The event feed: a workspace's through the API (owners and admins), the instance's through
`workspaces events list`; oldest first, read on from a stored cursor."""

from __future__ import annotations

import base64
import json
import shlex
import uuid
from typing import Any

from tests.api.conftest import Api, settled
from tests.conftest import Cli
from tests.factories import Factory, Workspace
from workspaces.logs import shown_url


def _read(api: Api, slug: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/api/workspaces/{slug}/events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _types(page: dict[str, Any]) -> list[str]:
    return [e["type"] for e in page["items"]]


def _workspace(api: Api, headers: dict[str, str], name: str) -> Workspace:
    slug = api.workspace(headers, name)
    found = api.client.get(f"/api/workspaces/{slug}", headers=headers).json()
    return Workspace(uuid.UUID(found["id"]), slug)


def test_a_consumer_pages_oldest_first_and_polls_from_its_cursor(api: Api) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    for name in ("bob", "cat", "dan"):
        api.invite(ann, slug, f"{name}@example.com")
    settled(api.db.url)

    whole = _read(api, slug, ann)
    assert _types(whole) == ["workspace.created", "member.added", "invite.created",
                             "invite.created", "invite.created"]
    assert whole["has_more"] is False
    first = whole["items"][0]
    assert first["id"].startswith("evt_") and first["version"] == 1
    assert first["workspace"]["slug"] == slug
    assert first["actor"] == {"type": "user", "id": first["actor"]["id"],
                              "email": "ann@example.com"}
    assert first["occurred_at"].endswith("Z")
    assert [e["data"]["invite"]["email"] for e in whole["items"][2:]] == [
        "bob@example.com", "cat@example.com", "dan@example.com"]

    pages, cursor = [], None
    while True:
        page = _read(api, slug, ann, limit=2, **({"after": cursor} if cursor else {}))
        pages.append(page)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [e for p in pages for e in p["items"]] == whole["items"]

    # Nothing new: no items, and a cursor to poll with (never null once events were read).
    idle = _read(api, slug, ann, after=cursor)
    assert idle["items"] == [] and idle["has_more"] is False and idle["next_cursor"]
    invites = api.client.get(f"/api/workspaces/{slug}/invites", headers=ann).json()["items"]
    bob = next(i for i in invites if i["email"] == "bob@example.com")
    assert api.client.post(f"/api/workspaces/{slug}/invites/{bob['id']}/revoke",
                           headers=ann).status_code == 200
    settled(api.db.url)
    polled = _read(api, slug, ann, after=idle["next_cursor"])
    assert _types(polled) == ["invite.revoked"]
    assert _read(api, slug, ann, after=polled["next_cursor"])["items"] == []
    # The same cursor read again gives the same events: a consumer that crashed before
    # storing the new cursor reads them again, and drops them by `id`.
    assert _read(api, slug, ann, after=idle["next_cursor"])["items"] == polled["items"]


def test_the_type_filter_takes_one_or_more_published_types(api: Api) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    api.invite(ann, slug, "bob@example.com")
    api.invite(ann, slug, "cat@example.com")
    settled(api.db.url)
    assert _types(_read(api, slug, ann, type="invite.created")) == ["invite.created"] * 2
    both = _read(api, slug, ann, type=["workspace.created", "invite.created"])
    assert _types(both) == ["workspace.created", "invite.created", "invite.created"]
    paged = _read(api, slug, ann, type="invite.created", limit=1)
    rest = _read(api, slug, ann, type="invite.created", after=paged["next_cursor"])
    assert paged["items"] + rest["items"] == _read(api, slug, ann, type="invite.created")["items"]

    none = _read(api, slug, ann, type="invite.declined")
    assert none["items"] == [] and none["has_more"] is False
    # Nothing of the type yet, but a cursor past what was looked through: polling with it
    # shows only declines that come later.
    assert none["next_cursor"]

    unknown = api.client.get(f"/api/workspaces/{slug}/events?type=member.joined", headers=ann)
    assert "member.joined" in api.error(unknown, 422, "invalid_event_type")
    users = api.client.get(f"/api/workspaces/{slug}/events?type=user.created", headers=ann)
    assert "instance feed" in api.error(users, 422, "invalid_event_type")


def test_a_workspace_feed_shows_only_its_own_events(api: Api) -> None:
    ann = api.signup("ann@example.com")
    bob = api.signup("bob@example.com")
    acme = api.workspace(ann, "Acme")
    globex = api.workspace(bob, "Globex")
    api.invite(bob, globex, "cat@example.com")
    api.invite(ann, acme, "dan@example.com")
    settled(api.db.url)
    mine = _read(api, acme, ann)["items"]
    assert {e["workspace"]["slug"] for e in mine} == {acme}
    assert _types({"items": mine}) == ["workspace.created", "member.added", "invite.created"]
    assert [e["data"]["invite"]["email"] for e in _read(api, globex, bob)["items"][2:]] == [
        "cat@example.com"]


def test_owners_and_admins_read_the_feed_members_cannot_strangers_see_nothing(api: Api
                                                                             ) -> None:
    ann = api.signup("ann@example.com")
    acme = _workspace(api, ann, "Acme")
    make = Factory(api.db.url)
    try:
        admin = make.member(acme, "adam@example.com", "admin")
        owner = make.member(acme, "olga@example.com", "owner")
        member = make.member(acme, "meg@example.com", "member")
        stranger = make.user("sam@example.com")
    finally:
        make.close()
    settled(api.db.url)
    for reader in (ann, admin.headers, owner.headers):
        assert _read(api, acme.slug, reader)["items"]
    refused = api.client.get(f"/api/workspaces/{acme.slug}/events", headers=member.headers)
    assert "admin" in api.error(refused, 403, "insufficient_role")
    hidden = api.client.get(f"/api/workspaces/{acme.slug}/events", headers=stranger.headers)
    api.error(hidden, 404, "workspace_not_found")
    api.error(api.client.get(f"/api/workspaces/{acme.slug}/events"), 401, "not_authenticated")


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_bad_cursors_and_limits_are_refused_in_words(api: Api) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    url = f"/api/workspaces/{slug}/events"
    for bad in ("nonsense", "%%%", _cursor("2:0:1"), _cursor("1:-1:3"), _cursor("1:0"),
                _cursor(f"1:0:{2**63}"), _cursor("1:x:1"), "gA"):
        message = api.error(api.client.get(url, params={"after": bad}, headers=ann), 422,
                            "invalid_cursor")
        assert "next_cursor" in message
    for limit in (0, 101):
        api.error(api.client.get(url, params={"limit": limit}, headers=ann), 422,
                  "invalid_input")


def test_a_cursor_is_a_point_in_the_instance_order_valid_in_any_scope(api: Api) -> None:
    """A cursor names no workspace: passed to another workspace's feed (or with another
    filter), it reads that feed's events after the same point."""
    ann = api.signup("ann@example.com")
    acme = api.workspace(ann, "Acme")
    globex = api.workspace(ann, "Globex")
    api.invite(ann, globex, "early@example.com")
    settled(api.db.url)
    point = _read(api, acme, ann)["next_cursor"]
    api.invite(ann, globex, "late@example.com")
    settled(api.db.url)
    after = _read(api, globex, ann, after=point)["items"]
    assert [e["data"]["invite"]["email"] for e in after] == ["late@example.com"]


def test_the_instance_feed_waits_for_service_credentials(api: Api) -> None:
    ann = api.signup("ann@example.com")
    for headers, status, code in (({}, 401, "not_authenticated"),
                                  (ann, 403, "service_credential_required")):
        refused = api.client.get("/api/events", headers=headers)
        assert "workspaces events list" in api.error(refused, status, code)


def test_the_feeds_are_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in ("/api/workspaces/{slug}/events", "/api/events"):
        get = paths[path]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/EventPage"}
        assert {"403", "410", "422"} <= set(get["responses"])
        assert {p["name"] for p in get["parameters"]} >= {"after", "limit", "type"}


def _run(cli: Cli, line: str) -> Any:
    """A `next:` line, run as printed."""
    words = shlex.split(line)
    assert words[0] == "workspaces"
    return cli(*words[1:])


def _next_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("next: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("next: ")


def test_the_operator_reads_the_instance_feed_and_reads_on_as_told(api: Api) -> None:
    cli = Cli(api.db.url, {})
    empty = cli("events", "list", "--database-url", api.db.url)
    assert empty.exit_code == 0, empty.output
    assert "No events yet." in empty.stdout and "next:" not in empty.stdout

    ann = api.signup("ann@example.com")
    acme = api.workspace(ann, "Acme")
    api.signup("bob@example.com")
    api.invite(ann, acme, "cat@example.com")
    settled(api.db.url)
    every = json.loads(cli("events", "list", "--json", "--database-url", api.db.url).stdout)
    assert every["ok"] is True and every["has_more"] is False
    assert [e["type"] for e in every["items"]] == [
        "user.created", "workspace.created", "member.added", "user.created", "invite.created"]

    first = cli("events", "list", "--limit", "2", "--database-url", api.db.url)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0].split()[1] == "user.created"
    assert len([line for line in first.stdout.splitlines() if "evt_" in line]) == 2
    step = _next_line(first.stdout)
    assert step.startswith("workspaces events list --after ") and "--limit 2" in step
    second = _run(cli, step)
    assert second.exit_code == 0, second.output
    assert [line.split()[1] for line in second.stdout.splitlines() if "evt_" in line] == [
        "member.added", "user.created"]
    third = _run(cli, _next_line(second.stdout))
    assert [line.split()[1] for line in third.stdout.splitlines() if "evt_" in line] == [
        "invite.created"]
    idle = _run(cli, _next_line(third.stdout))
    assert "No new events." in idle.stdout and _next_line(idle.stdout)

    narrowed = json.loads(cli("events", "list", "--workspace", acme, "--type",
                              "invite.created", "--json", "--database-url", api.db.url).stdout)
    assert [e["data"]["invite"]["email"] for e in narrowed["items"]] == ["cat@example.com"]
    assert narrowed["next"] == [
        f"workspaces events list --after {narrowed['next_cursor']} --workspace {acme} "
        f"--type invite.created --json "
        f"--database-url {shlex.quote(shown_url(api.db.url).paste)}"]
    bad = cli("events", "list", "--type", "nope", "--database-url", api.db.url)
    assert bad.exit_code == 1 and "error[invalid_event_type]" in bad.stderr
