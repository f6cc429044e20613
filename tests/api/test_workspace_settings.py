"""Workspace settings through the API and the pages: rename, ownership transfer (also racing a
leave and another transfer), the audit trail's filter and pages; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from tests.api.conftest import Api
from tests.conftest import at_once
from tests.factories import PASSWORD, Factory, User, Workspace
from workspaces.db import create_sync_engine, parse_url
from workspaces.models import members, workspaces


@pytest.fixture
def make(api: Api) -> Iterator[Factory]:
    factory = Factory(api.db.url)
    yield factory
    factory.close()


@dataclass
class Team:
    """Acme: Ann owns it, Bob is an admin, Carl a member; Dan belongs elsewhere."""

    acme: Workspace
    ann: User
    bob: User
    carl: User
    dan: User


@pytest.fixture
def team(make: Factory) -> Team:
    ann = make.user("ann@example.com", "Ann")
    acme = make.workspace(ann, "Acme")
    bob = make.member(acme, make.user("bob@example.com", "Bob"), "admin")
    carl = make.member(acme, make.user("carl@example.com", "Carl"), "member")
    dan = make.user("dan@example.com", "Dan")
    make.workspace(dan, "Elsewhere")
    return Team(acme, ann, bob, carl, dan)


def _roles(api: Api, slug: str) -> dict[str, str]:
    """Who holds which role, read from the database itself."""
    rows = api.db.sql(
        "SELECT u.email, m.role FROM workspace_members m JOIN users u ON u.id = m.user_id "
        f"JOIN workspaces w ON w.id = m.workspace_id WHERE w.slug = '{slug}'")
    return {str(email): str(role) for email, role in rows}


def _audit(api: Api, headers: dict[str, str], slug: str, **params: Any) -> Any:
    return api.client.get(f"/api/workspaces/{slug}/audit", params=params, headers=headers)


def _transfer(api: Api, headers: dict[str, str], slug: str, user_id: object,
              step_down: bool = False) -> Any:
    return api.client.post(f"/api/workspaces/{slug}/transfer",
                           json={"user_id": str(user_id), "step_down": step_down},
                           headers=headers)


def _rename(api: Api, headers: dict[str, str], slug: str, name: Any) -> Any:
    return api.client.patch(f"/api/workspaces/{slug}", json={"name": name}, headers=headers)


def test_owners_and_admins_rename_and_the_slug_stays(api: Api, team: Team) -> None:
    slug = team.acme.slug
    renamed = _rename(api, team.ann.headers, slug, "  Acme Holdings  ")
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Acme Holdings"  # cleaned like a new workspace's name
    assert renamed.json()["slug"] == slug and renamed.json()["role"] == "owner"
    assert api.client.get(f"/api/workspaces/{slug}", headers=team.carl.headers).json()[
        "name"] == "Acme Holdings"
    assert _rename(api, team.bob.headers, slug, "Acme Group").json()["name"] == "Acme Group"

    events = _audit(api, team.ann.headers, slug).json()["items"]
    assert [(e["action"], e["actor_email"], e["detail"]) for e in events] == [
        ("renamed", "bob@example.com", {"from": "Acme Holdings", "to": "Acme Group"}),
        ("renamed", "ann@example.com", {"from": "Acme", "to": "Acme Holdings"})]
    assert events[0]["target_type"] == "workspace"
    assert events[0]["target_id"] == str(team.acme.id)

    # The same name again changes and records nothing.
    assert _rename(api, team.ann.headers, slug, "Acme Group").status_code == 200
    assert len(_audit(api, team.ann.headers, slug).json()["items"]) == 2


def test_renaming_is_refused_to_members_outsiders_and_bad_names(api: Api, team: Team) -> None:
    slug = team.acme.slug
    api.error(_rename(api, team.carl.headers, slug, "Mine now"), 403, "insufficient_role")
    api.error(_rename(api, team.dan.headers, slug, "Mine now"), 404, "workspace_not_found")
    api.error(_rename(api, {}, slug, "Mine now"), 401, "not_authenticated")
    api.error(_rename(api, team.ann.headers, slug, "   "), 422, "invalid_name")
    api.error(_rename(api, team.ann.headers, slug, "x" * 201), 422, "invalid_input")
    api.error(_rename(api, team.ann.headers, slug, None), 422, "invalid_input")
    assert api.db.sql(f"SELECT name FROM workspaces WHERE slug = '{slug}'") == [("Acme",)]
    assert _audit(api, team.ann.headers, slug).json()["items"] == []


def test_transfer_makes_another_owner_and_the_caller_stays_owner(api: Api, team: Team) -> None:
    slug = team.acme.slug
    done = _transfer(api, team.ann.headers, slug, team.carl.id)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["workspace"]["slug"] == slug and body["workspace"]["role"] == "owner"
    assert body["new_owner"]["user_id"] == str(team.carl.id)
    assert body["new_owner"]["role"] == "owner"
    assert body["new_owner"]["email"] == "carl@example.com"
    assert _roles(api, slug) == {"ann@example.com": "owner", "bob@example.com": "admin",
                                 "carl@example.com": "owner"}
    (event,) = _audit(api, team.ann.headers, slug, action="ownership_transferred").json()[
        "items"]
    assert (event["actor_email"], event["target_email"], event["target_id"]) == (
        "ann@example.com", "carl@example.com", str(team.carl.id))
    assert event["detail"] == {"step_down": False, "from": "member"}


def test_transfer_with_step_down_leaves_the_caller_an_admin(api: Api, team: Team) -> None:
    slug = team.acme.slug
    done = _transfer(api, team.ann.headers, slug, team.bob.id, step_down=True)
    assert done.status_code == 200, done.text
    assert done.json()["workspace"]["role"] == "admin"
    assert done.json()["new_owner"]["role"] == "owner"
    assert _roles(api, slug) == {"ann@example.com": "admin", "bob@example.com": "owner",
                                 "carl@example.com": "member"}
    (event,) = _audit(api, team.bob.headers, slug).json()["items"]
    assert event["action"] == "ownership_transferred"
    assert event["detail"] == {"step_down": True, "from": "admin"}
    # Ann is an admin now: she can no longer hand the workspace over, nor delete it.
    api.error(_transfer(api, team.ann.headers, slug, team.carl.id), 403, "insufficient_role")
    api.error(api.client.delete(f"/api/workspaces/{slug}", headers=team.ann.headers), 403,
              "insufficient_role")


def test_every_refused_transfer_changes_nothing(api: Api, team: Team, make: Factory) -> None:
    slug = team.acme.slug
    co_owner = make.member(team.acme, make.user("olga@example.com"), "owner")
    before = _roles(api, slug)
    ann = team.ann.headers
    message = api.error(_transfer(api, ann, slug, team.ann.id, step_down=True), 422,
                        "transfer_to_self")
    assert "another member" in message
    api.error(_transfer(api, ann, slug, uuid.uuid4()), 404, "member_not_found")
    api.error(_transfer(api, ann, slug, team.dan.id), 404, "member_not_found")  # not a member
    assert "olga@example.com" in api.error(
        _transfer(api, ann, slug, co_owner.id, step_down=True), 409, "already_owner")
    # Only owners hand over: an admin and a member are refused, an outsider sees nothing.
    api.error(_transfer(api, team.bob.headers, slug, team.carl.id), 403, "insufficient_role")
    api.error(_transfer(api, team.carl.headers, slug, team.carl.id), 403, "insufficient_role")
    api.error(_transfer(api, team.dan.headers, slug, team.carl.id), 404, "workspace_not_found")
    api.error(_transfer(api, {}, slug, team.carl.id), 401, "not_authenticated")
    api.error(api.client.post(f"/api/workspaces/{slug}/transfer", json={"user_id": "x"},
                              headers=ann), 422, "invalid_input")
    api.error(api.client.post(f"/api/workspaces/{slug}/transfer", json={}, headers=ann), 422,
              "invalid_input")
    assert _roles(api, slug) == before
    assert _audit(api, ann, slug).json()["items"] == []


def test_the_audit_trail_filters_by_action_across_pages(api: Api, team: Team,
                                                        make: Factory) -> None:
    slug = team.acme.slug
    ann = team.ann.headers
    for n in range(5):
        assert _rename(api, ann, slug, f"Acme {n}").status_code == 200
        role = "admin" if n % 2 == 0 else "member"
        assert api.client.patch(f"/api/workspaces/{slug}/members/{team.carl.id}",
                                json={"role": role}, headers=ann).status_code == 200
    everything = _audit(api, ann, slug, limit=100).json()["items"]
    assert [e["action"] for e in everything] == ["role_changed", "renamed"] * 5

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"action": "renamed", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = _audit(api, ann, slug, **params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
    assert cursor is None  # 5 entries in pages of 2, 2, 1
    assert {e["action"] for e in seen} == {"renamed"}
    assert [e["detail"]["to"] for e in seen] == [f"Acme {n}" for n in (4, 3, 2, 1, 0)]
    assert [e["id"] for e in seen] == [e["id"] for e in everything if e["action"] == "renamed"]

    assert _audit(api, ann, slug, action="left").json() == {"items": [], "next_cursor": None}
    for bad in ("nope", "RENAMED", "renamed "):
        message = api.error(_audit(api, ann, slug, action=bad), 422, "invalid_action")
        assert "ownership_transferred" in message  # names the actions there are
    api.error(_audit(api, ann, slug, action="x" * 33), 422, "invalid_input")
    member = make.member(team.acme, None, "member")
    api.error(_audit(api, member.headers, slug, action="renamed"), 403, "insufficient_role")
    assert _audit(api, team.bob.headers, slug, action="renamed").status_code == 200


def _outcome(response: Any) -> tuple[int, str | None]:
    code = response.json()["error"]["code"] if response.status_code >= 400 else None
    return response.status_code, code


def test_transfer_racing_the_target_leaving_has_one_outcome(api: Api, make: Factory) -> None:
    """Ann, the only owner, hands over to Carl and steps down while Carl leaves. Either the
    leave wins (the transfer finds no member) or the transfer does (Carl, now the only owner,
    cannot leave): never a workspace without an owner, never Carl back in after leaving."""
    ann = make.user("ann@example.com")
    outcomes = set()
    for trial in range(6):
        place = make.workspace(ann, f"Race {trial}")
        carl = make.member(place, None, "member")
        transfer, leave = at_once(
            lambda p=place, c=carl: _transfer(api, ann.headers, p.slug, c.id, step_down=True),
            lambda p=place, c=carl: api.client.delete(
                f"/api/workspaces/{p.slug}/members/{c.id}", headers=c.headers))
        outcome = (_outcome(transfer), _outcome(leave))
        roles = _roles(api, place.slug)
        if outcome == ((200, None), (409, "last_owner")):
            assert roles == {"ann@example.com": "admin", carl.email: "owner"}, trial
        else:
            assert outcome == ((404, "member_not_found"), (204, None)), outcome
            assert roles == {"ann@example.com": "owner"}, trial
        outcomes.add(outcome)
    print("outcomes seen:", outcomes)  # with -s: on PostgreSQL usually both orders


def test_two_owners_handing_over_to_the_same_member_at_once(api: Api, make: Factory) -> None:
    """Both step down: the first transfer wins; the second finds Carl already an owner and is
    refused whole, so its caller stays an owner (its step-down is not half applied)."""
    for trial in range(4):
        ann = make.user(f"ann{trial}@example.com")
        place = make.workspace(ann, f"Pair {trial}")
        bob = make.member(place, None, "owner")
        carl = make.member(place, None, "member")
        results = at_once(
            *(lambda h=who.headers, s=place.slug, c=carl.id: _transfer(api, h, s, c, True)
              for who in (ann, bob)))
        outcomes = sorted(_outcome(r) for r in results)
        assert outcomes == [(200, None), (409, "already_owner")], outcomes
        winner, loser = (ann, bob) if results[0].status_code == 200 else (bob, ann)
        assert _roles(api, place.slug) == {winner.email: "admin", loser.email: "owner",
                                           carl.email: "owner"}, trial
        events = _audit(api, loser.headers, place.slug).json()["items"]
        assert [(e["action"], e["actor_email"]) for e in events] == [
            ("ownership_transferred", winner.email)]


# PostgreSQL only: SQLite's BEGIN IMMEDIATE serialises whole requests, the order is fixed.
@pytest.mark.parametrize("app_db", ["postgresql"], indirect=True)
def test_transfer_waits_for_a_leave_in_progress_and_then_finds_no_member(
    api: Api, team: Team
) -> None:
    """Deterministic order on PostgreSQL: while another transaction holds the workspace's
    membership lock and has removed Carl, the transfer to Carl waits (seen in pg_stat_activity,
    not guessed from time), then reads the committed state: 404, Ann still the owner."""
    engine = create_sync_engine(parse_url(api.db.url))
    answers: list[Any] = []
    try:
        with engine.connect() as conn:
            leave = conn.begin()
            conn.execute(select(workspaces.c.id).where(workspaces.c.id == team.acme.id)
                         .with_for_update(key_share=True))
            conn.execute(delete(members).where(members.c.workspace_id == team.acme.id,
                                               members.c.user_id == team.carl.id))
            request = threading.Thread(target=lambda: answers.append(_transfer(
                api, team.ann.headers, team.acme.slug, team.carl.id, step_down=True)))
            request.start()
            with engine.connect() as watcher:
                deadline = time.monotonic() + 30
                while not watcher.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()")).scalar():
                    assert request.is_alive(), f"the transfer did not wait: {answers}"
                    assert time.monotonic() < deadline, "the transfer never queued"
                    time.sleep(0.02)
            assert not answers
            leave.commit()
            request.join(30)
    finally:
        engine.dispose()
    api.error(answers[0], 404, "member_not_found")
    assert _roles(api, team.acme.slug) == {"ann@example.com": "owner",
                                           "bob@example.com": "admin"}


def _browser(api: Api, email: str) -> str:
    """Sign the test client in as `email` (a factory account); the CSRF token of its pages."""
    form = api.client.get("/signin").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed = api.client.post("/signin", data={"csrf_token": csrf, "email": email,
                                              "password": PASSWORD})
    assert signed.status_code == 200 and "Sign out" in signed.text
    page: str = api.client.get("/").text
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_the_pages_refuse_members_the_audit_log_and_owner_actions(api: Api, team: Team) -> None:
    slug = team.acme.slug
    _browser(api, "carl@example.com")
    general = api.client.get(f"/w/{slug}/settings")
    assert general.status_code == 200
    assert 'aria-current="page">General' in general.text
    assert f'href="/w/{slug}/audit"' not in general.text  # no Audit log tab for members
    assert "Rename" not in general.text and "Delete workspace" not in general.text
    for path in (f"/w/{slug}/audit", f"/w/{slug}/settings/delete",
                 f"/w/{slug}/settings/transfer?user_id={team.bob.id}"):
        refused = api.client.get(path)
        assert refused.status_code == 403, path
        assert "Not allowed" in refused.text


def test_a_wrong_typed_name_deletes_nothing_and_reloading_asks_again(
    api: Api, team: Team
) -> None:
    slug = team.acme.slug
    csrf = _browser(api, "ann@example.com")
    path = f"/w/{slug}/settings/delete"
    for typed in ("acme", "Acm", ""):
        wrong = api.client.post(path, data={"csrf_token": csrf, "confirm_name": typed})
        assert wrong.status_code == 422, typed
        assert 'id="confirm_name-error"' in wrong.text and "Type “Acme” exactly" in wrong.text
        assert f'value="{typed}"' in wrong.text  # the input is kept
    assert api.db.sql(f"SELECT name FROM workspaces WHERE slug = '{slug}'") == [("Acme",)]
    assert api.client.get(path).status_code == 200  # a reload of the address asks again
    done = api.client.post(path, data={"csrf_token": csrf, "confirm_name": " Acme "},
                           follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert api.db.sql(f"SELECT count(*) FROM workspaces WHERE slug = '{slug}'") == [(0,)]
    assert api.db.sql(f"SELECT count(*) FROM audit_events WHERE workspace_id IN "
                      f"(SELECT id FROM workspaces WHERE slug = '{slug}')") == [(0,)]


def test_transfer_pages_ask_first_and_a_reload_goes_back_to_the_tab(api: Api, team: Team) -> None:
    slug = team.acme.slug
    csrf = _browser(api, "ann@example.com")
    asked = api.client.get(f"/w/{slug}/settings/transfer",
                           params={"user_id": str(team.carl.id), "step_down": "yes"})
    assert asked.status_code == 200
    assert "Make carl@example.com an owner of Acme?" in asked.text
    assert "You step down to admin" in asked.text
    assert _roles(api, slug)["carl@example.com"] == "member"  # asking changes nothing
    reload = api.client.get(f"/w/{slug}/settings/transfer", follow_redirects=False)
    assert (reload.status_code, reload.headers["location"]) == (303, f"/w/{slug}/settings")
    done = api.client.post(f"/w/{slug}/settings/transfer", follow_redirects=False, data={
        "csrf_token": csrf, "user_id": str(team.carl.id), "step_down": "yes"})
    assert (done.status_code, done.headers["location"]) == (303, f"/w/{slug}")
    assert _roles(api, slug) == {"ann@example.com": "admin", "bob@example.com": "admin",
                                 "carl@example.com": "owner"}
    again = api.client.post(f"/w/{slug}/settings/transfer", follow_redirects=True, data={
        "csrf_token": csrf, "user_id": str(team.bob.id)})
    assert "Only owners and above can transfer ownership" in again.text  # a flash, not a 500


def _rows(page: str) -> list[str]:
    """The rows of a page's table body, as HTML."""
    return page.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")[1:]


def test_the_audit_tab_names_who_acted_in_words(api: Api, team: Team, make: Factory) -> None:
    """An invitee who declines from the emailed link without signing in is named by the
    invite's address; an account deleted since by the address it acted with."""
    slug = team.acme.slug
    invite = make.invite(team.acme, "eve@example.com")
    link = api.client.get(f"/invites/{invite.token}").text
    csrf = link.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert api.client.post(f"/invites/{invite.token}/decline",
                           data={"csrf_token": csrf}).status_code == 200
    gone = make.member(team.acme, make.user("gone@example.com"), "admin")
    api.client.cookies.clear()
    assert _rename(api, gone.headers, slug, "Acme by Gone").status_code == 200
    api.db.sql(f"DELETE FROM users WHERE email = '{gone.email}'")

    _browser(api, "bob@example.com")  # an admin
    tab = api.client.get(f"/w/{slug}/audit")
    assert tab.status_code == 200 and 'aria-current="page">Audit log' in tab.text
    rows = _rows(tab.text)
    assert len(rows) == 2
    assert "Workspace renamed" in rows[0]
    assert f"{gone.email} (account since deleted)" in rows[0]
    assert "“Acme” → “Acme by Gone”" in rows[0]
    # Declined through the link without signing in: anyone holding it may have, so the tab
    # does not name the invitee as the one who did.
    assert "Invite declined" in rows[1] and rows[1].count("eve@example.com") == 1
    assert "someone with the invite link" in rows[1]
    assert "someone whose account was deleted" not in rows[1]
    filtered = api.client.get(f"/w/{slug}/audit", params={"action": "declined"}).text
    assert _rows(filtered) == rows[1:]
    assert '<option value="declined" selected>' in filtered
    refused = api.client.get(f"/w/{slug}/audit", params={"action": "bogus"})
    assert refused.status_code == 422 and "action must be one of" in refused.text
