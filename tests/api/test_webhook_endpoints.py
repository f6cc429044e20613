"""A workspace's webhook endpoints through the API, on both databases: managing them, who may,
what is refused at save (SSRF, unknown types, the limit), the secret shown once and stored
sealed, and queueing (fan-out of told events, a test message, a retry, a replay)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tests.conftest import Cli
from tests.factories import Factory, User, Workspace
from workspaces.app import create_app
from workspaces.events.catalogue import PUBLISHED
from workspaces.security import unseal
from workspaces.settings import Settings
from workspaces.webhooks.service import MAX_ENDPOINTS

# Nothing is sent here: what was saved and queued is read as it was left.
pytestmark = pytest.mark.usefixtures("held_webhook_loop")

LOCAL = "127.0.0.0/8"
HOOK = "http://127.0.0.1:9/hook"  # nothing is sent in these tests: only saved and queued


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API's settings with receivers on this machine allowed (as an operator would)."""
    return settings.model_copy(update={"webhook_allowed_networks": LOCAL,
                                       "workspace_webhook_allowed_networks": LOCAL})


class Hooks:
    """Two workspaces (A and B), each with an owner, an admin and a member, and the calls."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.make = Factory(api.db.url)
        self.owner = self.make.user("owner@example.com")
        self.a = self.make.workspace(self.owner, "Alpha")
        self.admin = self.make.member(self.a, "admin@example.com", "admin")
        self.member = self.make.member(self.a, "member@example.com", "member")
        self.other_owner = self.make.user("other@example.com")
        self.b = self.make.workspace(self.other_owner, "Beta")

    def path(self, space: Workspace | None = None, rest: str = "") -> str:
        return f"/api/workspaces/{(space or self.a).slug}/webhooks{rest}"

    def create(self, who: User | None = None, space: Workspace | None = None,
               **body: Any) -> dict[str, Any]:
        response = self.api.client.post(self.path(space), json={"url": HOOK, **body},
                                        headers=(who or self.admin).headers)
        assert response.status_code == 201, response.text
        made: dict[str, Any] = response.json()
        return made

    def deliveries(self, endpoint_id: str, who: User | None = None,
                   space: Workspace | None = None, **query: Any) -> dict[str, Any]:
        response = self.api.client.get(self.path(space, f"/{endpoint_id}/deliveries"),
                                       params=query, headers=(who or self.admin).headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


def operator(api: Api, settings: Settings) -> Cli:
    """`workspaces ...` on the API's database, with its key and allowed networks."""
    return Cli(api.db.url, {"WEBHOOK_ALLOWED_NETWORKS": LOCAL,
                            "WORKSPACE_WEBHOOK_ALLOWED_NETWORKS": LOCAL,
                            "SECRET_KEY": settings.secret_key or ""})


@pytest.fixture
def hooks(api: Api) -> Iterator[Hooks]:
    world = Hooks(api)
    yield world
    world.make.close()


def _rows(db: Cli, sql: str) -> list[tuple[Any, ...]]:
    return db.sql(sql)


def test_an_admin_adds_reads_changes_and_deletes_an_endpoint(api: Api, hooks: Hooks) -> None:
    made = hooks.create(events=["member.added", "member.removed", "member.added"],
                        description="  Billing   system ")
    assert made["url"] == HOOK and made["enabled"] is True
    assert made["events"] == ["member.added", "member.removed"]  # once each, catalogue order
    assert made["description"] == "Billing system"
    assert made["secret"].startswith("whsec_")
    assert len(base64.b64decode(made["secret"].removeprefix("whsec_"))) == 32
    one = hooks.path(rest=f"/{made['id']}")
    headers = hooks.admin.headers

    listed = api.client.get(hooks.path(), headers=headers).json()
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    read = api.client.get(one, headers=headers).json()
    assert read == {k: v for k, v in made.items() if k != "secret"}

    changed = api.client.patch(one, json={"url": "http://127.0.0.2:9/other",
                                          "description": "CRM"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "http://127.0.0.2:9/other"
    assert changed.json()["events"] == ["member.added", "member.removed"]  # left out: kept
    every = api.client.patch(one, json={"events": None}, headers=headers).json()
    assert every["events"] is None and every["description"] == "CRM"

    off = api.client.post(f"{one}/disable", headers=headers).json()
    assert off["enabled"] is False and "admin@example.com" in off["disabled_reason"]
    assert off["disabled_at"] is not None
    on = api.client.post(f"{one}/enable", headers=headers).json()
    assert on["enabled"] is True and on["disabled_reason"] is None and on["disabled_at"] is None

    assert api.client.delete(one, headers=headers).status_code == 204
    api.error(api.client.get(one, headers=headers), 404, "webhook_not_found")
    assert api.client.get(hooks.path(), headers=headers).json() == []

    trail = _rows(api.db, "SELECT action, actor_email, target_id, detail FROM audit_events "
                          "WHERE action LIKE 'webhook%' ORDER BY created_at")
    assert [t[0] for t in trail] == ["webhook_created", "webhook_updated", "webhook_updated",
                                     "webhook_updated", "webhook_updated", "webhook_deleted"]
    assert {t[1] for t in trail} == {"admin@example.com"}
    assert {t[2] for t in trail} == {made["id"]}
    details = [t[3] if isinstance(t[3], dict) else json.loads(str(t[3])) for t in trail]
    assert details[0]["url"] == "http://127.0.0.1:9"  # the origin only: a path may hold a token
    assert details[1]["changed"] == ["description", "url"]
    assert details[3] == {"url": "http://127.0.0.2:9", "enabled": False}


def test_a_member_is_refused_every_verb(api: Api, hooks: Hooks) -> None:
    made = hooks.create()
    delivery = hooks.api.client.post(hooks.path(rest=f"/{made['id']}/test"),
                                     headers=hooks.admin.headers).json()["delivery_id"]
    one = f"/{made['id']}"
    calls = [("POST", "", {"url": HOOK}), ("GET", "", None), ("GET", one, None),
             ("PATCH", one, {"description": "x"}), ("DELETE", one, None),
             ("POST", f"{one}/enable", None), ("POST", f"{one}/disable", None),
             ("POST", f"{one}/rotate-secret", None), ("POST", f"{one}/test", None),
             ("GET", f"{one}/deliveries", None),
             ("POST", f"{one}/deliveries/{delivery}/retry", None),
             ("POST", f"{one}/replay", {"since": "2020-01-01T00:00:00Z"})]
    for method, rest, body in calls:
        response = api.client.request(method, hooks.path(rest=rest), json=body,
                                      headers=hooks.member.headers)
        assert response.status_code == 403, (method, rest, response.text)
        assert response.json()["error"]["code"] == "insufficient_role"
        assert "whsec_" not in response.text
    assert api.client.get(hooks.path(rest=one), headers=hooks.admin.headers).json()[
        "description"] == ""  # untouched


def test_an_admin_of_one_workspace_cannot_reach_another_workspace_s_endpoint(
        api: Api, hooks: Hooks) -> None:
    theirs = hooks.create(hooks.other_owner, hooks.b)
    delivery = api.client.post(hooks.path(hooks.b, f"/{theirs['id']}/test"),
                               headers=hooks.other_owner.headers).json()["delivery_id"]
    state = ("SELECT url, description, enabled, sealed_secret, event_types FROM "
             "webhook_endpoints")
    before = _rows(api.db, state), _rows(api.db, "SELECT status, next_attempt_at FROM "
                                                 "webhook_deliveries")
    one = f"/{theirs['id']}"  # B's endpoint id, under A's path where the admin is admin
    calls = [("GET", one, None), ("PATCH", one, {"description": "mine"}),
             ("DELETE", one, None), ("POST", f"{one}/enable", None),
             ("POST", f"{one}/disable", None), ("POST", f"{one}/rotate-secret", None),
             ("POST", f"{one}/test", None), ("GET", f"{one}/deliveries", None),
             ("POST", f"{one}/deliveries/{delivery}/retry", None),
             ("POST", f"{one}/replay", {"since": "2020-01-01T00:00:00Z"})]
    for who in (hooks.admin, hooks.owner):
        for method, rest, body in calls:
            response = api.client.request(method, hooks.path(rest=rest), json=body,
                                          headers=who.headers)
            assert response.status_code == 404, (method, rest, response.text)
            assert response.json()["error"]["code"] == "webhook_not_found"
        # ... and B's slug is not theirs at all
        api.error(api.client.get(hooks.path(hooks.b, one), headers=who.headers), 404,
                  "workspace_not_found")
    assert (_rows(api.db, state), _rows(api.db, "SELECT status, next_attempt_at FROM "
                                                "webhook_deliveries")) == before
    # A delivery of B's endpoint, under A's own endpoint: not found either.
    mine = hooks.create()
    api.error(api.client.post(hooks.path(rest=f"/{mine['id']}/deliveries/{delivery}/retry"),
                              headers=hooks.admin.headers), 404, "delivery_not_found")
    assert hooks.deliveries(mine["id"])["items"] == []


def _everything(db: Cli) -> str:
    """Every row of every table, as text: where a secret must not be found."""
    tables = {str(r[0]) for r in db.sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if not db.is_pg else
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    return "\n".join(repr(db.sql(f'SELECT * FROM "{t}"')) for t in sorted(tables))


def test_the_secret_is_shown_only_when_made_and_stored_only_sealed(
        api: Api, hooks: Hooks, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    made = hooks.create()
    one = hooks.path(rest=f"/{made['id']}")
    headers = hooks.admin.headers
    first = made["secret"]
    with time_machine.travel(datetime.now(UTC), tick=False):
        rotated = api.client.post(f"{one}/rotate-secret", headers=headers)
        rotated_at = datetime.now(UTC)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert second.startswith("whsec_") and second != first
    until = datetime.fromisoformat(rotated.json()["previous_secret_until"])
    assert until == rotated_at + timedelta(hours=settings.webhook_secret_grace_hours)

    answers = [api.client.get(hooks.path(), headers=headers).text,
               api.client.get(one, headers=headers).text,
               api.client.patch(one, json={"description": "d"}, headers=headers).text,
               api.client.post(f"{one}/disable", headers=headers).text,
               api.client.post(f"{one}/enable", headers=headers).text,
               api.client.post(f"{one}/test", headers=headers).text,
               api.client.get(f"{one}/deliveries", headers=headers).text]
    for text in answers:
        assert "whsec_" not in text
    assert first not in api.client.get("/openapi.json").text  # which names the prefix

    stored = _everything(api.db)
    key = settings.secret_key or ""
    for secret in (first, second):
        assert secret not in stored
        assert secret.removeprefix("whsec_") not in stored
        assert secret not in caplog.text
    ((sealed, previous, previous_until),) = _rows(api.db, (
        "SELECT sealed_secret, sealed_previous_secret, previous_secret_until "
        "FROM webhook_endpoints"))
    assert unseal(key, str(sealed)) == second
    assert unseal(key, str(previous)) == first  # still signing, until the grace ends
    assert previous_until is not None
    assert "secret_rotated" in str(_rows(api.db, "SELECT action FROM audit_events"))


def test_rotating_without_a_grace_period_keeps_no_previous_secret(api: Api, hooks: Hooks,
                                                                  settings: Settings) -> None:
    made = hooks.create()
    with TestClient(create_app(settings.model_copy(
            update={"webhook_secret_grace_hours": 0}))) as client:
        rotated = client.post(hooks.path(rest=f"/{made['id']}/rotate-secret"),
                              headers=hooks.admin.headers).json()
    assert rotated["previous_secret_until"] is None
    assert _rows(api.db, "SELECT sealed_previous_secret FROM webhook_endpoints") == [(None,)]


REFUSED = [
    "http://8.8.8.8/hook",  # public, but plain http
    "https://127.0.0.1/hook", "https://127.8.9.10/hook", "https://localhost/hook",
    "https://10.0.0.1/hook", "https://172.16.5.4/hook", "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://169.254.169.254/latest/meta-data", "https://169.254.1.1/hook",
    "https://224.0.0.1/hook", "https://0.0.0.0/hook", "https://255.255.255.255/hook",
    "https://[::1]/hook", "https://[::]/hook", "https://[fc00::1]/hook", "https://[fd12:3456::1]/hook",
    "https://[fe80::1]/hook", "https://[ff02::1]/hook", "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:169.254.169.254]/hook", "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://[2002:7f00:1::]/hook",
    "ftp://8.8.8.8/hook", "https:///hook", "https://user:pass@8.8.8.8/hook",
    "https://8.8.8.8/hook#part", "https://8.8.8.8:99999/hook", "https://8.8.8.8/ho ok",
    "https://8.8.8.8/\nhook", "not a url", "",
]


def test_a_url_must_be_https_to_a_public_address(api: Api, hooks: Hooks,
                                                 settings: Settings) -> None:
    """With WEBHOOK_ALLOWED_NETWORKS empty (the default), on create and on update alike."""
    strict = settings.model_copy(update={"webhook_allowed_networks": "",
                                         "workspace_webhook_allowed_networks": ""})
    with TestClient(create_app(strict)) as client:
        for url in REFUSED:
            response = client.post(hooks.path(), json={"url": url},
                                   headers=hooks.admin.headers)
            assert response.status_code == 422, (url, response.text)
            assert response.json()["error"]["code"] == "webhook_url_not_allowed", url
        public = client.post(hooks.path(), json={"url": "https://8.8.8.8/hook"},
                             headers=hooks.admin.headers)
        assert public.status_code == 201, public.text
        one = hooks.path(rest=f"/{public.json()['id']}")
        for url in ("https://[::1]/hook", "http://127.0.0.1:9/hook", "https://10.1.2.3/"):
            api.error(client.patch(one, json={"url": url}, headers=hooks.admin.headers), 422,
                      "webhook_url_not_allowed")
    assert _rows(api.db, "SELECT url FROM webhook_endpoints") == [("https://8.8.8.8/hook",)]


def test_allowed_networks_admit_internal_receivers_with_plain_http(api: Api,
                                                                   hooks: Hooks) -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://127.0.0.1/hook",
                "http://[::ffff:127.0.0.1]:8080/hook"):
        assert hooks.create(url=url)["url"] == url
    for url in ("http://8.8.8.8/hook", "https://10.0.0.1/hook", "https://[::1]/hook"):
        api.error(api.client.post(hooks.path(), json={"url": url},
                                  headers=hooks.admin.headers), 422, "webhook_url_not_allowed")


@pytest.mark.parametrize("events", [["member.joined"], [], ["member.added", "nope"],
                                    ["user.deleted"], ["webhook.test"], ["webhook.created"],
                                    ["workspace.deleted"]])
def test_an_unknown_event_type_is_refused(api: Api, hooks: Hooks, events: list[str]) -> None:
    message = api.error(api.client.post(hooks.path(), json={"url": HOOK, "events": events},
                                        headers=hooks.admin.headers), 422,
                        "invalid_event_type")
    assert "member.added" in message  # says what may be chosen
    made = hooks.create()
    api.error(api.client.patch(hooks.path(rest=f"/{made['id']}"), json={"events": events},
                               headers=hooks.admin.headers), 422, "invalid_event_type")
    assert _rows(api.db, "SELECT event_types FROM webhook_endpoints") == [(None,)]


def test_every_problem_of_a_new_endpoint_is_told_at_once(api: Api, hooks: Hooks) -> None:
    response = api.client.post(hooks.path(), json={
        "url": "ftp://x", "events": ["nope"], "description": "a\u202eb"},
        headers=hooks.admin.headers)
    api.error(response, 422, "webhook_url_not_allowed")
    assert {f["field"] for f in response.json()["error"]["fields"]} == {
        "url", "events", "description"}


def test_a_workspace_has_at_most_twenty_endpoints(api: Api, hooks: Hooks) -> None:
    for n in range(MAX_ENDPOINTS):
        hooks.create(url=f"http://127.0.0.1:9/hook/{n}")
    message = api.error(api.client.post(hooks.path(), json={"url": HOOK},
                                        headers=hooks.admin.headers), 409,
                        "webhook_limit_reached")
    assert "delete one" in message
    assert hooks.create(hooks.other_owner, hooks.b)  # another workspace counts its own


def _deliveries_of(db: Cli, endpoint_id: str) -> list[tuple[Any, ...]]:
    hex_id = uuid.UUID(endpoint_id).hex
    column = "endpoint_id::text" if db.is_pg else "endpoint_id"
    wanted = endpoint_id if db.is_pg else hex_id
    return db.sql(
        "SELECT e.type, d.status, d.message_id, e.id FROM webhook_deliveries d "
        "LEFT JOIN events e ON e.position = d.event_position "
        f"WHERE d.{column} = '{wanted}' ORDER BY d.created_at, e.position")


def test_told_events_fan_out_to_the_endpoints_that_want_them(api: Api, hooks: Hooks,
                                                            settings: Settings) -> None:
    every = hooks.create()
    removals = hooks.create(url="http://127.0.0.1:9/removals", events=["member.removed"])
    off = hooks.create(url="http://127.0.0.1:9/off")
    api.client.post(hooks.path(rest=f"/{off['id']}/disable"), headers=hooks.admin.headers)
    theirs = hooks.create(hooks.other_owner, hooks.b)
    instance = operator(api, settings)(
        "webhooks", "create", "--url", "http://127.0.0.1:9/instance", "--json",
        "--database-url", api.db.url)
    assert instance.exit_code == 0, instance.output
    instance_id = json.loads(instance.stdout)["endpoint"]["id"]

    invited = api.invite(hooks.admin.headers, hooks.a.slug, "new@example.com")
    api.client.delete(f"/api/workspaces/{hooks.a.slug}/members/{hooks.member.id}",
                      headers=hooks.admin.headers)
    api.signup("someone@example.com")  # user.created: the instance's alone

    assert [(t, s) for t, s, *_ in _deliveries_of(api.db, every["id"])] == [
        ("invite.created", "pending"), ("member.removed", "pending")]
    assert [t for t, *_ in _deliveries_of(api.db, removals["id"])] == ["member.removed"]
    assert _deliveries_of(api.db, off["id"]) == []
    assert _deliveries_of(api.db, theirs["id"]) == []
    assert [t for t, *_ in _deliveries_of(api.db, instance_id)] == [
        "invite.created", "member.removed", "user.created"]
    for _, _, message_id, event_id in _deliveries_of(api.db, every["id"]):
        assert message_id == event_id  # the webhook-id is the event's id
    page = hooks.deliveries(every["id"])
    assert [d["event_type"] for d in page["items"]] == ["member.removed", "invite.created"]
    assert invited["email"] == "new@example.com"


def test_a_test_message_is_queued_for_the_delivery_loop(api: Api, hooks: Hooks) -> None:
    made = hooks.create()
    one = hooks.path(rest=f"/{made['id']}")
    queued = api.client.post(f"{one}/test", headers=hooks.admin.headers)
    assert queued.status_code == 202, queued.text
    assert queued.json()["message_id"].startswith("msg_")
    ((position, message_id, body, status, attempts),) = _rows(api.db, (
        "SELECT event_position, message_id, payload, status, attempts FROM webhook_deliveries"))
    payload = body if isinstance(body, dict) else json.loads(str(body))
    assert (position, message_id, status, attempts) == (
        None, queued.json()["message_id"], "pending", 0)
    assert payload["id"] == message_id and payload["type"] == "webhook.test"
    assert payload["version"] == 1 and payload["occurred_at"].endswith("Z")
    assert payload["workspace"] == {"id": str(hooks.a.id), "slug": hooks.a.slug}
    assert payload["actor"] == {"type": "user", "id": str(hooks.admin.id),
                                "email": "admin@example.com"}
    assert payload["data"]["endpoint_id"] == made["id"] and payload["data"]["message"]
    ((entry,),) = [hooks.deliveries(made["id"])["items"]]
    assert (entry["id"], entry["event_type"], entry["status"], entry["attempts"]) == (
        queued.json()["delivery_id"], "webhook.test", "pending", [])
    assert _rows(api.db, "SELECT count(*) FROM events") == [(0,)]  # in no feed

    api.client.post(f"{one}/disable", headers=hooks.admin.headers)
    api.error(api.client.post(f"{one}/test", headers=hooks.admin.headers), 409,
              "webhook_disabled")


def test_a_failed_delivery_is_retried_by_hand_with_its_attempts_kept(api: Api,
                                                                    hooks: Hooks) -> None:
    made = hooks.create()
    endpoint_id = uuid.UUID(made["id"])
    hooks.make.delivery(endpoint_id, hooks.make.event(hooks.a), "failed")
    (failed,) = hooks.deliveries(made["id"])["items"]
    assert failed["status"] == "failed" and failed["attempt_count"] == 1
    assert failed["attempts"][0]["status_code"] == 500
    later = datetime.now(UTC) + timedelta(hours=3)
    with time_machine.travel(later, tick=False):
        retried = api.client.post(
            hooks.path(rest=f"/{made['id']}/deliveries/{failed['id']}/retry"),
            headers=hooks.admin.headers)
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["status"] == "pending" and body["attempt_count"] == 1
    assert body["attempts"] == failed["attempts"]
    assert datetime.fromisoformat(body["next_attempt_at"]) == later
    api.error(api.client.post(hooks.path(rest=f"/{made['id']}/deliveries/{uuid.uuid4()}/retry"),
                              headers=hooks.admin.headers), 404, "delivery_not_found")


def test_replay_queues_the_retained_events_of_the_endpoint_s_scope_since_a_time(
        api: Api, hooks: Hooks) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        hooks.make.event(hooks.a, "member.added")  # before `since`
        clock.shift(timedelta(hours=1))
        since = datetime.now(UTC)
        wanted = [hooks.make.event(hooks.a, "member.added"),
                  hooks.make.event(hooks.a, "invite.created")]
        hooks.make.event(hooks.b, "member.added")  # another workspace's
        hooks.make.event(None, "user.created")  # the instance's only
        made = hooks.create()
        only = hooks.create(url="http://127.0.0.1:9/only", events=["invite.created"])
        clock.shift(timedelta(minutes=5))
        replay = hooks.path(rest=f"/{made['id']}/replay")
        done = api.client.post(replay, json={"since": since.isoformat()},
                               headers=hooks.admin.headers)
        assert done.status_code == 202, done.text
        assert done.json()["queued"] == 2
        assert datetime.fromisoformat(done.json()["since"]) == since
        assert [t for t, *_ in _deliveries_of(api.db, made["id"])] == [
            "member.added", "invite.created"]
        # Still waiting: not queued twice.
        assert api.client.post(replay, json={"since": since.isoformat()},
                               headers=hooks.admin.headers).json()["queued"] == 0
        assert api.client.post(hooks.path(rest=f"/{only['id']}/replay"),
                               json={"since": since.isoformat()},
                               headers=hooks.admin.headers).json()["queued"] == 1
        # Delivered ones are sent again (a receiver that lost them asks for them again).
        api.db.sql("UPDATE webhook_deliveries SET status = 'delivered'")
        again = api.client.post(replay, json={"since": (since - timedelta(hours=2)).isoformat()},
                                headers=hooks.admin.headers).json()
        assert again["queued"] == 3  # the event before `since` too, now it is included
        # An event the retention sweep deleted is not there to replay.
        api.db.sql(f"DELETE FROM events WHERE position = {wanted[0]}")
        api.db.sql("UPDATE webhook_deliveries SET status = 'delivered'")
        assert api.client.post(replay, json={"since": since.isoformat()},
                               headers=hooks.admin.headers).json()["queued"] == 1
        api.error(api.client.post(replay, json={
            "since": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
            headers=hooks.admin.headers), 422, "invalid_since")
        api.client.post(hooks.path(rest=f"/{made['id']}/disable"), headers=hooks.admin.headers)
        api.error(api.client.post(replay, json={"since": since.isoformat()},
                                  headers=hooks.admin.headers), 409, "webhook_disabled")


def test_an_instance_endpoint_replays_every_workspace_and_the_user_events(
        api: Api, hooks: Hooks, settings: Settings) -> None:
    hooks.make.event(hooks.a, "member.added")
    hooks.make.event(hooks.b, "member.added")
    hooks.make.event(None, "user.created")
    cli = operator(api, settings)
    made = cli("webhooks", "create", "--url", HOOK, "--json", "--database-url", api.db.url)
    endpoint_id = json.loads(made.stdout)["endpoint"]["id"]
    done = cli("webhooks", "replay", endpoint_id, "--since", "1d", "--json",
               "--database-url", api.db.url)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["queued"] == 3


def test_the_delivery_log_pages_newest_first_and_filters_by_status(api: Api,
                                                                  hooks: Hooks) -> None:
    made = hooks.create()
    endpoint_id = uuid.UUID(made["id"])
    start = datetime.now(UTC)
    for n, status in enumerate(("delivered", "failed", "pending", "delivered", "failed")):
        with time_machine.travel(start + timedelta(minutes=n), tick=False):
            hooks.make.delivery(endpoint_id, hooks.make.event(hooks.a), status)
    first = hooks.deliveries(made["id"], limit=2)
    second = hooks.deliveries(made["id"], limit=2, cursor=first["next_cursor"])
    third = hooks.deliveries(made["id"], limit=2, cursor=second["next_cursor"])
    seen = [d["status"] for page in (first, second, third) for d in page["items"]]
    assert seen == ["failed", "delivered", "pending", "failed", "delivered"]
    assert third["next_cursor"] is None
    stamps = [d["created_at"] for page in (first, second, third) for d in page["items"]]
    assert stamps == sorted(stamps, reverse=True)
    failed = hooks.deliveries(made["id"], status="failed")["items"]
    assert [d["attempts"][0]["status_code"] for d in failed] == [500, 500]
    assert failed[0]["attempts"][0]["duration_ms"] == 12
    assert failed[0]["attempts"][0]["response_excerpt"] == "ok"
    api.error(api.client.get(hooks.path(rest=f"/{made['id']}/deliveries"),
                             params={"cursor": "garbage"}, headers=hooks.admin.headers),
              422, "invalid_cursor")


def test_the_api_is_described_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    base = "/api/workspaces/{slug}/webhooks"
    assert {"post", "get"} <= set(paths[base])
    assert {"get", "patch", "delete"} <= set(paths[base + "/{endpoint_id}"])
    for action in ("enable", "disable", "rotate-secret", "test", "replay",
                   "deliveries/{delivery_id}/retry"):
        assert "post" in paths[f"{base}/{{endpoint_id}}/{action}"], action
    assert "get" in paths[base + "/{endpoint_id}/deliveries"]
    described = json.dumps(api.client.get("/openapi.json").json()["components"]["schemas"][
        "WebhookCreate"])
    assert all(t in described for t in PUBLISHED)


def test_a_replay_since_the_dawn_of_time_takes_every_event_kept(api: Api, hooks: Hooks) -> None:
    hooks.make.event(hooks.a, "member.added")
    made = hooks.create()
    done = api.client.post(hooks.path(rest=f"/{made['id']}/replay"),
                           json={"since": "0001-01-01T00:30:00+01:00"},  # before year 1 in UTC
                           headers=hooks.admin.headers)
    assert done.status_code == 202, done.text
    assert done.json()["queued"] == 1


def test_the_operators_networks_are_not_open_to_workspace_endpoints(
        api: Api, hooks: Hooks, settings: Settings) -> None:
    """WEBHOOK_ALLOWED_NETWORKS admits the instance's receivers (the operator's), not a
    workspace admin's: they would otherwise reach any host and port of that network and read
    the answers in the delivery log. WORKSPACE_WEBHOOK_ALLOWED_NETWORKS is theirs."""
    operators_only = settings.model_copy(update={"webhook_allowed_networks": LOCAL,
                                                 "workspace_webhook_allowed_networks": ""})
    with TestClient(create_app(operators_only)) as client:
        for url in (HOOK, "https://127.0.0.1:5432/", "http://[::ffff:127.0.0.1]:6379/"):
            message = api.error(client.post(hooks.path(), json={"url": url},
                                            headers=hooks.admin.headers), 422,
                                "webhook_url_not_allowed")
            assert "WEBHOOK_ALLOWED_NETWORKS" not in message  # no hint to ask for it
        public = client.post(hooks.path(), json={"url": "https://8.8.8.8/hook"},
                             headers=hooks.admin.headers)
        assert public.status_code == 201, public.text
        api.error(client.patch(hooks.path(rest=f"/{public.json()['id']}"),
                               json={"url": HOOK}, headers=hooks.admin.headers), 422,
                  "webhook_url_not_allowed")
    cli = Cli(api.db.url, {"WEBHOOK_ALLOWED_NETWORKS": LOCAL,
                           "SECRET_KEY": settings.secret_key or ""})
    instance = cli("webhooks", "create", "--url", HOOK, "--database-url", api.db.url)
    assert instance.exit_code == 0, instance.output
    for_a = cli("webhooks", "create", "--url", HOOK, "--workspace", hooks.a.slug,
                "--database-url", api.db.url)  # an operator's, but the workspace's to manage
    assert for_a.exit_code == 1 and "error[webhook_url_not_allowed]" in for_a.stderr
    assert _rows(api.db, "SELECT url FROM webhook_endpoints WHERE workspace_id IS NULL") == [
        (HOOK,)]
    assert _rows(api.db, "SELECT url FROM webhook_endpoints WHERE workspace_id IS NOT "
                         "NULL") == [("https://8.8.8.8/hook",)]


def test_a_refusal_does_not_tell_what_an_internal_name_resolves_to(
        api: Api, hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("10.1.2.3" if host == "db.internal.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    message = api.error(api.client.post(hooks.path(), json={
        "url": "https://db.internal.test/hook"}, headers=hooks.admin.headers), 422,
        "webhook_url_not_allowed")
    assert "db.internal.test resolves to a non-public address" in message
    assert "10.1.2.3" not in message
    literal = api.error(api.client.post(hooks.path(), json={"url": "https://10.1.2.3/"},
                                        headers=hooks.admin.headers), 422,
                        "webhook_url_not_allowed")
    assert "10.1.2.3 is not a public address" in literal  # the caller's own words


def test_workspace_deleted_goes_to_instance_endpoints_only(
        api: Api, hooks: Hooks, settings: Settings) -> None:
    """A workspace's endpoints are deleted with it: offering them its end would promise a
    message nobody sends."""
    message = api.error(api.client.post(hooks.path(), json={
        "url": HOOK, "events": ["workspace.deleted"]}, headers=hooks.admin.headers), 422,
        "invalid_event_type")
    assert "only the instance's endpoints" in message
    made = operator(api, settings)("webhooks", "create", "--url", HOOK, "--events",
                                   "workspace.deleted", "--json", "--database-url", api.db.url)
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["endpoint"]["events"] == ["workspace.deleted"]


def test_responses_carrying_a_secret_are_not_cached(api: Api, hooks: Hooks) -> None:
    made = api.client.post(hooks.path(), json={"url": HOOK}, headers=hooks.admin.headers)
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    rotated = api.client.post(hooks.path(rest=f"/{made.json()['id']}/rotate-secret"),
                              headers=hooks.admin.headers)
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    listed = api.client.get(hooks.path(), headers=hooks.admin.headers)
    assert "no-store" not in listed.headers.get("cache-control", "")


def test_test_messages_and_replays_are_limited_per_workspace_per_hour(
        api: Api, hooks: Hooks, settings: Settings) -> None:
    """A loop of test messages, or of replays since long ago, would put hours of backlog in
    front of every endpoint's deliveries."""
    tight = settings.model_copy(update={"webhook_test_limit_per_workspace_per_hour": 2,
                                        "webhook_replay_limit_per_workspace_per_hour": 1})
    one, two = hooks.create(), hooks.create()
    theirs = hooks.create(hooks.other_owner, hooks.b)
    since = {"since": "2020-01-01T00:00:00Z"}
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with time_machine.travel(start, tick=False) as traveller, \
            TestClient(create_app(tight)) as client:
        def post(endpoint: dict[str, Any], rest: str, who: User = hooks.admin,
                 space: Workspace | None = None, body: Any = None) -> Any:
            return client.post(hooks.path(space, f"/{endpoint['id']}/{rest}"), json=body,
                               headers=who.headers)

        assert post(one, "test").status_code == 202
        assert post(two, "test").status_code == 202  # the workspace's, not the endpoint's
        refused = post(one, "test")
        api.error(refused, 429, "rate_limited")
        assert 0 < int(refused.headers["retry-after"]) <= 3600
        assert post(theirs, "test", hooks.other_owner, hooks.b).status_code == 202
        assert post(one, "replay", body=since).status_code == 202
        api.error(post(two, "replay", body=since), 429, "rate_limited")
        traveller.shift(timedelta(hours=1))
        assert post(one, "test").status_code == 202
        assert post(two, "replay", body=since).status_code == 202
    cli = operator(api, settings)  # an operator's replays are not counted
    for _ in range(3):
        done = cli("webhooks", "replay", one["id"], "--since", "1d", "--database-url",
                   api.db.url)
        assert done.exit_code == 0, done.output
