"""The event catalogue as a contract: drive every change through the API and the operator CLI,
then hold what the code told against what is documented (docs/events.md, the OpenAPI
document's `webhooks`, events/documented.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import time_machine
from pydantic import ValidationError
from sqlalchemy import select
from standardwebhooks import Webhook

from tests.api.conftest import Api, token_of
from tests.api.test_housekeeping import _sweep
from tests.api.test_members import _delete, _join, _patch
from tests.api.test_profile import PASSWORD, change_link, confirm, login
from tests.api.test_workspace_settings import _rename, _transfer
from tests.conftest import Cli, Sink, link_in
from workspaces.app import create_app
from workspaces.db import create_sync_engine, parse_url
from workspaces.events import catalogue, changes
from workspaces.events.documented import DATA, DELIVERED, ENVELOPES, MemberAddedData
from workspaces.models import events
from workspaces.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
OPERATOR = {"type": "operator", "id": None, "email": None}
SYSTEM = {"type": "system", "id": None, "email": None}
ANONYMOUS = {"type": "anonymous", "id": None, "email": None}
MISSING = object()


@dataclass
class Story:
    """What the drive did and what it holds that must never appear in an event."""

    ids: dict[str, str] = field(default_factory=dict)  # person -> user id
    secrets: list[str] = field(default_factory=list)
    told: list[dict[str, Any]] = field(default_factory=list)  # every event, in feed order

    def of(self, kind: str, **where: Any) -> list[dict[str, Any]]:
        """The events of `kind` whose `data` has these values at these dotted paths."""
        def at(event: dict[str, Any], path: str) -> Any:
            value: Any = event["data"]
            for part in path.split("__"):
                value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
            return value
        return [e for e in self.told if e["type"] == kind
                and all(at(e, path) == value for path, value in where.items())]

    def one(self, kind: str, **where: Any) -> dict[str, Any]:
        found = self.of(kind, **where)
        assert len(found) == 1, (kind, where, found)
        return found[0]


def actor(story: Story, person: str, email: str) -> dict[str, Any]:
    return {"type": "user", "id": story.ids[person], "email": email}


def _bearer(response: Any, story: Story) -> dict[str, str]:
    assert response.status_code in (200, 201), response.text
    token = str(response.json()["token"])
    story.secrets.append(token)
    return {"Authorization": f"Bearer {token}"}


def _me(api: Api, headers: dict[str, str]) -> str:
    return str(api.client.get("/api/me", headers=headers).json()["id"])


def _invite(api: Api, story: Story, headers: dict[str, str], slug: str, email: str,
            role: str = "member", **extra: Any) -> tuple[str, str]:
    issued = api.invite(headers, slug, email, role, **extra)
    story.secrets.append(token_of(issued))
    return str(issued["id"]), token_of(issued)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response


def drive(api: Api, smtp: Sink) -> Story:
    """Every change a consumer can be told, made the ways people and operators make them."""
    story = Story()
    cli = Cli(api.db.url, {"SECRET_KEY": api.client.app.state.secret_key})  # type: ignore[attr-defined]

    def op(*args: str) -> dict[str, Any]:
        run = cli(*args, "--database-url", api.db.url, "--json")
        assert run.exit_code == 0, run.output
        body: dict[str, Any] = json.loads(run.stdout)
        return body

    # Accounts: an operator's, a sign-up's; workspaces: a person's, an operator's.
    story.ids["olga"] = str(op("users", "create", "--email", "olga@example.com", "--name",
                               "Olga", "--password", PASSWORD)["id"])
    ann = _bearer(api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}), story)
    story.ids["ann"] = _me(api, ann)
    acme = api.workspace(ann, "Acme")
    ops = str(op("workspaces", "create", "--name", "Ops", "--owner", "ann@example.com")["slug"])
    _ok(_rename(api, ann, acme, "Acme Inc"))

    # Invites answered every way: accepted signed in, accepted by signing up, resent and
    # revoked, declined through the link without signing in, and left to expire.
    bob, story.ids["bob"] = _join(api, ann, acme, "bob@example.com", "admin")
    story.secrets.append(bob["Authorization"].split()[1])
    _, cat_token = _invite(api, story, ann, acme, "cat@example.com")
    cat = _bearer(_ok(api.client.post(f"/api/invites/{cat_token}/accept",
                                      json={"name": "Cat", "password": PASSWORD})), story)
    story.ids["cat"] = _me(api, cat)
    dan_invite, _ = _invite(api, story, ann, acme, "dan@example.com")
    resent = _ok(api.client.post(f"/api/workspaces/{acme}/invites/{dan_invite}/resend",
                                 headers=ann)).json()
    story.secrets.append(token_of(resent))
    _ok(api.client.post(f"/api/workspaces/{acme}/invites/{dan_invite}/revoke", headers=ann))
    eve = op("invites", "create", "-w", acme, "--email", "eve@example.com")
    story.secrets.append(token_of(eve))
    _ok(api.client.post(f"/api/invites/{token_of(eve)}/decline"), 204)
    _invite(api, story, ann, acme, "fay@example.com", expires_in_days=1)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=2), tick=True):
        assert _sweep(api.settings).expired_invites == 1
        _invite(api, story, ann, acme, "fay@example.com")  # replaces the expired one

    # Roles: changed, handed over without and with stepping down; removed, left.
    _ok(_patch(api, ann, acme, story.ids["bob"], "member"))
    _ok(_transfer(api, ann, acme, story.ids["bob"]))
    olga = _bearer(login(api, "olga@example.com"), story)
    _, olga_token = _invite(api, story, ann, ops, "olga@example.com")
    _ok(api.client.post(f"/api/invites/{olga_token}/accept", headers=olga))
    _ok(_transfer(api, ann, ops, story.ids["olga"], step_down=True))
    _ok(_delete(api, bob, acme, story.ids["cat"]), 204)

    # Ann renames herself and changes address, then leaves Acme as ann.new@.
    _ok(api.client.patch("/api/me", json={"name": "Ann Smith"}, headers=ann))
    email_token = change_link(api, smtp, ann, "ann.new@example.com")
    story.secrets.append(email_token)
    _ok(confirm(api, email_token, ann))
    _ok(_delete(api, ann, acme, story.ids["ann"]), 204)

    # Gus, a member of both, deletes his account; then Ops is deleted.
    gus, story.ids["gus"] = _join(api, bob, acme, "gus@example.com")
    _, gus_token = _invite(api, story, olga, ops, "gus@example.com")
    _ok(api.client.post(f"/api/invites/{gus_token}/accept", headers=gus))
    story.secrets.append(gus["Authorization"].split()[1])
    story.secrets.extend(str(h) for (h,) in api.db.sql("SELECT password_hash FROM users"))
    _ok(api.client.delete("/api/me", headers=gus), 204)
    _ok(api.client.delete(f"/api/workspaces/{ops}", headers=olga), 204)

    story.secrets.extend(link_in(m, "verify") for m in smtp.confirmations)
    story.secrets.append(PASSWORD)
    story.told = told(api.db.url)
    return story


def told(url: str) -> list[dict[str, Any]]:
    engine = create_sync_engine(parse_url(url))
    try:
        with engine.connect() as conn:
            return [dict(p) for p in conn.execute(
                select(events.c.payload).order_by(events.c.position)).scalars()]
    finally:
        engine.dispose()


def test_every_change_is_told_as_documented(api: Api, smtp: Sink) -> None:
    """One drive (it takes a while), every check of what it told."""
    story = drive(api, smtp)
    every_told_event_is_what_its_type_documents(story)
    no_event_carries_a_secret(story)
    each_event_names_who_acted_as_they_were_then(story)
    each_change_says_what_it_was_and_what_it_became(story)
    bob = _bearer(login(api, "bob@example.com"), story)
    the_audit_trail_still_shows_what_it_showed(_trail(api, bob, "acme"))


def every_told_event_is_what_its_type_documents(story: Story) -> None:
    assert {e["type"] for e in story.told} == set(catalogue.PUBLISHED)
    problems = []
    for event in story.told:
        try:
            ENVELOPES[event["type"]].model_validate_json(json.dumps(event), strict=True)
        except ValidationError as error:
            problems.append(f"{event['type']}: {error}")
    assert problems == []
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", e["occurred_at"]) for e in story.told)
    assert len({e["id"] for e in story.told}) == len(story.told)


def test_a_strict_description_refuses_a_key_more_or_less() -> None:
    event = _documented_types()[1]["member.role_changed"]
    model = ENVELOPES["member.role_changed"]
    for changed in ({**event, "extra": 1}, {**event, "data": {**event["data"], "extra": 1}},
                    {k: v for k, v in event.items() if k != "actor"},
                    {**event, "data": {**event["data"], "member": {
                        k: v for k, v in event["data"]["member"].items() if k != "email"}}}):
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps(changed), strict=True)


def _documented_types() -> tuple[list[str], dict[str, dict[str, Any]]]:
    """docs/events.md: the types its table names, and its example of each."""
    text = DOCS.read_text()
    section = text.split("\n## Event types\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| \[`([a-z_.]+)`\]", section, re.M)
    examples = {}
    for match in re.finditer(r"^#### `([a-z_.]+)`\n(.*?)```json\n(.*?)\n```", section,
                             re.M | re.S):
        examples[match[1]] = json.loads(match[3])
    return table, examples


def test_code_catalogue_openapi_and_docs_name_the_same_types(tmp_path: Path) -> None:
    """A type the code tells and the documents lack, or one they name that it never tells,
    fails here (the drive above proves every published type is told)."""
    published = set(catalogue.PUBLISHED)
    assert set(catalogue.SUMMARIES) == published == set(DATA) == set(ENVELOPES)
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}",
                              secret_key="test-secret-key-of-enough-length",
                              _env_file=None))  # type: ignore[call-arg]
    webhooks = app.openapi()["webhooks"]
    assert set(webhooks) - {catalogue.TEST_MESSAGE} == published
    assert catalogue.TEST_MESSAGE in webhooks and catalogue.TEST_MESSAGE not in published
    for kind, entry in webhooks.items():
        body = entry["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/" + DELIVERED[kind].__name__), kind
        assert {p["name"] for p in entry["post"]["parameters"]} == {
            "webhook-id", "webhook-timestamp", "webhook-signature"}
    table, examples = _documented_types()
    assert sorted(table) == sorted(published) and len(table) == len(published)
    assert set(examples) == published | {catalogue.TEST_MESSAGE}
    for kind, example in examples.items():
        DELIVERED[kind].model_validate_json(json.dumps(example), strict=True)
    hows = {m.model_fields["how"].annotation for m in get_args(get_args(MemberAddedData)[0])}
    assert {get_args(h)[0] for h in hows} == set(get_args(changes.AddedHow))


def no_event_carries_a_secret(story: Story) -> None:
    serialized = json.dumps(story.told)
    assert len(story.secrets) > 15
    assert [s for s in story.secrets if s in serialized] == []
    assert "://" not in serialized and "/invites/" not in serialized
    assert "password" not in serialized and "token" not in serialized


def each_event_names_who_acted_as_they_were_then(story: Story) -> None:
    ann_then = actor(story, "ann", "ann@example.com")
    ann_now = actor(story, "ann", "ann.new@example.com")
    assert story.one("user.created", user__email="olga@example.com")["actor"] == OPERATOR
    assert story.one("user.created", user__email="ann@example.com")["actor"] == ann_then
    cat = story.one("user.created", user__email="cat@example.com")  # joined through the link
    assert cat["actor"] == actor(story, "cat", "cat@example.com")
    acme, ops = (story.one("workspace.created", workspace__name=n) for n in ("Acme", "Ops"))
    assert acme["actor"] == ann_then
    assert ops["actor"] == {**ann_then, "type": "operator"}  # acting as the owner it names
    assert story.one("invite.created", invite__email="eve@example.com")["actor"] == {
        **ann_then, "type": "operator"}
    assert story.one("invite.declined")["actor"] == ANONYMOUS
    assert story.one("invite.expired")["actor"] == SYSTEM
    # Ann's address changed midway: earlier events keep the old one, later ones the new.
    assert story.one("user.email_changed")["actor"] == ann_then
    left = story.one("member.removed", how="left")
    assert left["actor"] == ann_now and left["data"]["member"]["email"] == "ann.new@example.com"
    assert story.one("member.removed", how="removed")["actor"] == actor(
        story, "bob", "bob@example.com")
    gus = actor(story, "gus", "gus@example.com")
    assert [e["actor"] for e in story.of("member.removed", how="account_deleted")] == [gus, gus]
    assert story.one("user.deleted")["actor"] == gus
    assert story.one("workspace.deleted")["actor"] == actor(story, "olga", "olga@example.com")
    assert all(e["workspace"] is None for e in story.told if e["type"].startswith("user."))
    assert all(e["workspace"] is not None for e in story.told
               if not e["type"].startswith("user."))


def each_change_says_what_it_was_and_what_it_became(story: Story) -> None:
    bob = story.ids["bob"]
    changed = story.one("member.role_changed", how="changed")["data"]
    assert (changed["member"]["user_id"], changed["before"], changed["after"]) == (
        bob, {"role": "admin"}, {"role": "member"})
    renamed = story.one("workspace.updated")["data"]
    assert (renamed["before"], renamed["after"]) == ({"name": "Acme"}, {"name": "Acme Inc"})
    assert renamed["workspace"]["name"] == "Acme Inc"
    moved = story.one("user.email_changed")["data"]
    assert (moved["before"], moved["after"]) == ({"email": "ann@example.com"},
                                                 {"email": "ann.new@example.com"})
    named = story.one("user.updated")["data"]
    assert (named["before"], named["after"]) == ({"name": "Ann"}, {"name": "Ann Smith"})
    resent = story.one("invite.resent")["data"]
    assert resent["before"]["expires_at"] < resent["after"]["expires_at"]
    assert resent["after"]["expires_at"] == resent["invite"]["expires_at"]

    # Handed over without stepping down: one role change, then the transfer.
    kept = story.one("workspace.ownership_transferred", step_down=False)
    assert kept["data"]["to"]["user_id"] == bob and kept["data"]["by"]["role"] == "owner"
    to_bob = story.one("member.role_changed", how="transfer", member__user_id=bob)["data"]
    assert (to_bob["before"], to_bob["after"]) == ({"role": "member"}, {"role": "owner"})
    stepped = story.one("workspace.ownership_transferred", step_down=True)["data"]
    assert stepped["to"]["role"] == "owner" and stepped["by"]["role"] == "admin"
    ann_down = story.one("member.role_changed", how="transfer",
                         member__user_id=story.ids["ann"])["data"]
    assert (ann_down["before"], ann_down["after"]) == ({"role": "owner"}, {"role": "admin"})

    # An invite's life: made, replaced once expired, accepted with the member it made.
    replaced = story.one("invite.revoked", reason="replaced")["data"]["invite"]
    assert (replaced["email"], replaced["status"]) == ("fay@example.com", "revoked")
    assert story.one("invite.expired")["data"]["invite"]["id"] == replaced["id"]
    assert story.one("invite.revoked", reason="revoked")["data"]["invite"]["email"] == \
        "dan@example.com"
    for accepted in story.of("invite.accepted"):
        added = story.one("member.added", invite_id=accepted["data"]["invite"]["id"])
        assert added["data"]["member"]["user_id"] == accepted["data"]["user_id"]
        assert added["data"]["member"]["role"] == accepted["data"]["invite"]["role"]
        assert story.told.index(added) == story.told.index(accepted) + 1
    created = story.of("member.added", how="created")
    assert [(e["data"]["member"]["role"], e["workspace"]["slug"]) for e in created] == [
        ("owner", "acme"), ("owner", "ops")]
    gone = story.of("member.removed", how="account_deleted")
    assert sorted(e["workspace"]["slug"] for e in gone) == ["acme", "ops"]
    assert story.told.index(story.one("user.deleted")) == story.told.index(gone[-1]) + 1


# The Acme audit trail this drive left on the commit before events told it (164a3ac), oldest
# first, with the two lines it gained marked; the sweep's lines come last (two days later).
# An expiry is compared as a time: it was written "+00:00", and is now written "Z".
WHEN = "<time>"
ACME_TRAIL = [
    ("workspace_created", "ann@example.com", None, {"name": "Acme"}),
    ("renamed", "ann@example.com", None, {"from": "Acme", "to": "Acme Inc"}),
    ("created", "ann@example.com", "bob@example.com", {"role": "admin", "expires_at": WHEN}),
    ("accepted", "bob@example.com", "bob@example.com", {"role": "admin"}),
    ("created", "ann@example.com", "cat@example.com", {"role": "member", "expires_at": WHEN}),
    ("accepted", "cat@example.com", "cat@example.com", {"role": "member"}),
    ("created", "ann@example.com", "dan@example.com", {"role": "member", "expires_at": WHEN}),
    ("resent", "ann@example.com", "dan@example.com", {"expires_at": WHEN}),
    ("revoked", "ann@example.com", "dan@example.com", {}),
    ("created", "ann@example.com", "eve@example.com", {"role": "member", "expires_at": WHEN}),
    ("declined", None, "eve@example.com", {}),
    ("created", "ann@example.com", "fay@example.com", {"role": "member", "expires_at": WHEN}),
    ("role_changed", "ann@example.com", "bob@example.com", {"from": "admin", "to": "member"}),
    ("ownership_transferred", "ann@example.com", "bob@example.com",
     {"step_down": False, "from": "member"}),
    ("removed", "bob@example.com", "cat@example.com", {"role": "member"}),
    ("left", "ann.new@example.com", "ann.new@example.com", {"role": "owner"}),
    ("created", "bob@example.com", "gus@example.com", {"role": "member", "expires_at": WHEN}),
    ("accepted", "gus@example.com", "gus@example.com", {"role": "member"}),
    ("account_deleted", "gus@example.com", "gus@example.com", {"role": "member"}),  # new
    ("expired", None, "fay@example.com", {"role": "member"}),  # new: the sweep tells it
    ("revoked", "ann@example.com", "fay@example.com",
     {"reason": "expired; replaced by a new invite"}),
    ("created", "ann@example.com", "fay@example.com", {"role": "member", "expires_at": WHEN}),
]


def _trail(api: Api, headers: dict[str, str], slug: str) -> list[tuple[Any, ...]]:
    items = _ok(api.client.get(f"/api/workspaces/{slug}/audit?limit=100",
                               headers=headers)).json()["items"]
    for item in items:
        if "expires_at" in item["detail"]:
            datetime.fromisoformat(item["detail"]["expires_at"])
            item["detail"]["expires_at"] = WHEN
    return [(i["action"], i["actor_email"], i["target_email"], i["detail"])
            for i in reversed(items)]


def the_audit_trail_still_shows_what_it_showed(trail: list[tuple[Any, ...]]) -> None:
    """The same lines as before events told them, plus `account_deleted` (a member whose
    account went) and `expired`."""
    assert trail == ACME_TRAIL


def test_the_receivers_in_the_docs_verify_and_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/events.md's two receivers, run as printed, against a message signed by the
    reference library (the plain HMAC one also with a second, stale signature beside)."""
    secret = "whsec_" + "ZG9jcyByZWNlaXZlciB0ZXN0IHNlY3JldCBvZiAzMiBi"
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    receiver, plain = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    body = b'{"id":"evt_0","type":"member.added","data":{}}'
    now = datetime.now(UTC)
    headers = {"webhook-id": "evt_0", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign("evt_0", now, body)}
    scope: dict[str, Any] = {}
    exec(plain, scope)  # noqa: S102 (the documentation's code, as printed)
    old = {**headers, "webhook-signature": "v1,c3RhbGU= " + headers["webhook-signature"]}
    assert scope["verify"](secret, old, body) is True
    assert scope["verify"](secret, headers, body + b" ") is False
    served, last_line = receiver.rsplit("\n", 2)[0], receiver.rstrip().rsplit("\n", 1)[1]
    assert last_line == 'HTTPServer(("", 8000), Receiver).serve_forever()'
    exec(served, scope)  # noqa: S102
    server = scope["HTTPServer"](("127.0.0.1", 0), scope["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert httpx.post(url, content=body + b" ", headers=headers).status_code == 400
    finally:
        server.shutdown()
        server.server_close()
