"""examples/membership_mirror: its receiver verifies, drops duplicates and copes with any
order; stopped and started again against a running server, it catches up from the feed and
its copy equals the database's memberships."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from standardwebhooks import Webhook

from examples.membership_mirror.mirror import (
    ClientCredentials,
    CliFeed,
    Consumer,
    FeedError,
    HttpFeed,
    Mirror,
    Page,
)
from tests.api.conftest import Api
from tests.api.test_event_catalogue import drive, told
from tests.api.test_profile import CONFIRM, login
from tests.conftest import Cli, Sink, free_port, link_in, serving
from tests.oauth.factory import Apps
from workspaces import clock
from workspaces.db import create_sync_engine, parse_url
from workspaces.models import members, users, webhook_endpoints
from workspaces.security import seal
from workspaces.settings import Settings

SERVE_KEY = "serve-test-secret-key-of-enough-length"  # what `serving` starts the server with
SECRET = "whsec_" + "bWlycm9yIHRlc3Qgc2lnbmluZyBzZWNyZXQgMzJieXQ="
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "membership_mirror" / "mirror.py"
Row = tuple[str, str, str, str]


class NoFeed:
    """A feed with nothing in it: the mirror learns only from webhooks."""

    def read(self, after: str | None) -> Page:
        return Page([], after, False)


def _cli_feed(db_url: str) -> CliFeed:
    """The documented catch-up source: `workspaces events list --json` on the server."""
    return CliFeed([sys.executable, "-m", "workspaces"], env={"DATABASE_URL": db_url})


class MintedTokens:
    """Service tokens of a client registered with `events:read`, minted as the token endpoint
    mints them, with the served instance's key (`ClientCredentials` asks the endpoint)."""

    def __init__(self, db_url: str, base: str) -> None:
        self.apps = Apps(url=db_url, settings=Settings(
            database_url=db_url, base_url=base, secret_key=SERVE_KEY,
            _env_file=None))  # type: ignore[call-arg]
        self.client = self.apps.client("Membership mirror", scopes=("events:read",))
        self.minted = 0

    def token(self, *, fresh: bool = False) -> str:
        self.minted += 1
        return self.apps.token(self.apps.grant(self.client, scopes=("events:read",)))


def memberships(url: str) -> set[Row]:
    """What the mirror must equal: every membership with its member's address."""
    engine = create_sync_engine(parse_url(url))
    try:
        with engine.connect() as conn:
            return {(str(r.workspace_id), str(r.user_id), r.email, r.role) for r in conn.execute(
                select(members.c.workspace_id, members.c.user_id, users.c.email, members.c.role)
                .join(users, users.c.id == members.c.user_id))}
    finally:
        engine.dispose()


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for `condition`; the bound is for a run that never gets there, not a bet."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


HTTP = httpx.Client(timeout=10)  # one for every delivery: a client per request costs 0.1 s


def post(port: int, event: dict[str, Any], *, secret: str = SECRET, body: bytes | None = None,
         at: datetime | None = None) -> int:
    """Deliver `event` as Workspaces does: signed with the reference library."""
    raw = json.dumps(event, separators=(",", ":")).encode()
    sent_at = at or datetime.now(UTC)
    headers = {"webhook-id": event["id"], "webhook-timestamp": str(int(sent_at.timestamp())),
               "webhook-signature": Webhook(secret).sign(event["id"], sent_at, raw),
               "content-type": "application/json"}
    return HTTP.post(f"http://127.0.0.1:{port}/", content=body or raw,
                     headers=headers).status_code


def _signed_in(api: Api, email: str) -> dict[str, str]:
    response = login(api, email)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def receiving(tmp_path: Path) -> Iterator[Callable[[str], Consumer]]:
    """Start consumers on fresh mirrors; each is stopped at the end."""
    started: list[Consumer] = []

    def start(name: str) -> Consumer:
        consumer = Consumer(Mirror(str(tmp_path / f"{name}.sqlite")), NoFeed(), SECRET,
                            port=0, every=3600)
        consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        consumer.stop()
        consumer.mirror.close()


def test_webhooks_in_any_order_and_twice_make_the_same_copy(
        api: Api, smtp: Sink, receiving: Callable[[str], Consumer]) -> None:
    """Every change the catalogue test makes (joins, role changes, transfers, removals,
    an address change, an account and a workspace deleted), delivered shuffled and each
    twice: the copy equals the database's memberships every time."""
    drive(api, smtp)
    bob = api.signup("hal@example.com") and _signed_in(api, "bob@example.com")
    for email, role in (("cat@example.com", "member"), ("ann.new@example.com", "member")):
        token = api.invite_token(bob, "acme", email, role)  # back after leaving, or removal
        assert api.client.post(f"/api/invites/{token}/accept",
                               headers=_signed_in(api, email)).status_code == 200
    hal = api.invite_token(bob, "acme", "hal@example.com", "admin")
    assert api.client.post(f"/api/invites/{hal}/accept",
                           headers=_signed_in(api, "hal@example.com")).status_code == 200
    told_events, expected = told(api.db.url), memberships(api.db.url)
    assert sorted((email, role) for _, _, email, role in expected) == [
        ("ann.new@example.com", "member"), ("bob@example.com", "owner"),
        ("cat@example.com", "member"), ("hal@example.com", "admin")]
    orders = [told_events, told_events[::-1]] + [
        random.Random(seed).sample(told_events, len(told_events))  # noqa: S311 (orders)
        for seed in range(4)]
    for number, order in enumerate(orders):
        consumer = receiving(f"order{number}")
        for event in order + order[::2]:
            assert post(consumer.port, event) == 204
        assert consumer.mirror.members() == expected, number
        assert consumer.mirror.came_by() == {"webhook": len(told_events)}


def test_the_receiver_refuses_what_does_not_verify_and_a_version_it_cannot_read(
        api: Api, smtp: Sink, receiving: Callable[[str], Consumer]) -> None:
    owner = api.signup("ann@example.com")
    api.workspace(owner)
    added = next(e for e in told(api.db.url) if e["type"] == "member.added")
    consumer = receiving("refusals")
    tampered = json.dumps({**added, "data": {**added["data"], "member": {
        **added["data"]["member"], "role": "member"}}}).encode()
    assert post(consumer.port, added, body=tampered) == 400
    other = "whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmch"
    assert post(consumer.port, added, secret=other) == 400
    assert post(consumer.port, added, at=datetime.now(UTC) - timedelta(minutes=10)) == 400
    assert HTTP.post(f"http://127.0.0.1:{consumer.port}/", json=added).status_code == 400
    assert post(consumer.port, {**added, "version": 2}) == 500  # retried until upgraded
    assert consumer.mirror.members() == set()
    test_message = {**added, "id": f"msg_{uuid.uuid4().hex}", "type": "webhook.test",
                    "data": {"endpoint_id": str(uuid.uuid4()), "message": "A test."}}
    assert post(consumer.port, test_message) == 204
    assert consumer.mirror.members() == set()
    assert post(consumer.port, added) == 204
    assert consumer.mirror.members() == memberships(api.db.url)


def test_the_example_wants_its_secret(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLE), "--db", str(tmp_path / "m.sqlite")],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 2 and "MIRROR_WEBHOOK_SECRET" in run.stderr


class Site:
    """A running `workspaces serve` driven over HTTP as people would."""

    def __init__(self, base: str, smtp: Sink) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.smtp = smtp

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def signup(self, email: str) -> dict[str, str]:
        body = self.ok(self.http.post("/api/auth/signup", json={
            "email": email, "password": "correct horse battery", "name": email[:3]}), 201)
        return {"Authorization": f"Bearer {body['token']}"}

    def workspace(self, owner: dict[str, str], name: str) -> str:
        return str(self.ok(self.http.post("/api/workspaces", json={"name": name},
                                          headers=owner), 201)["slug"])

    def join(self, owner: dict[str, str], slug: str, email: str, role: str = "member",
             who: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
        """Invite `email`, who accepts signed in as `who` or else signs up through the
        link: their headers and id."""
        issued = self.ok(self.http.post(f"/api/workspaces/{slug}/invites",
                                        json={"email": email, "role": role},
                                        headers=owner), 201)
        accept = issued["accept_url"].rsplit("/", 1)[1].join(["/api/invites/", "/accept"])
        if who is not None:
            joined = self.ok(self.http.post(accept, headers=who))
            return who, str(joined["member"]["user_id"])
        joined = self.ok(self.http.post(accept, json={"name": email[:3],
                                                      "password": "correct horse battery"}))
        return {"Authorization": f"Bearer {joined['token']}"}, str(joined["member"]["user_id"])

    def role(self, by: dict[str, str], slug: str, user_id: str, role: str) -> None:
        self.ok(self.http.patch(f"/api/workspaces/{slug}/members/{user_id}",
                                json={"role": role}, headers=by))

    def remove(self, by: dict[str, str], slug: str, user_id: str) -> None:
        self.ok(self.http.delete(f"/api/workspaces/{slug}/members/{user_id}", headers=by), 204)

    def new_address(self, who: dict[str, str], email: str) -> None:
        self.ok(self.http.post("/api/me/email", json={
            "email": email, "current_password": "correct horse battery"}, headers=who), 202)
        token = link_in(self.smtp.newest(email, CONFIRM), "email")
        self.ok(self.http.post("/api/auth/email/confirm", json={"token": token}, headers=who))


def _instance_endpoint(url: str, port: int) -> None:
    """An instance endpoint wanting every type, pointing at the mirror's receiver."""
    now = clock.now()
    engine = create_sync_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(insert(webhook_endpoints).values(
                id=uuid.uuid4(), workspace_id=None, url=f"http://127.0.0.1:{port}/",
                description="membership mirror", event_types=None,
                sealed_secret=seal(SERVE_KEY, SECRET),
                enabled=True, created_at=now, updated_at=now))
    finally:
        engine.dispose()


def test_stopped_and_started_again_the_mirror_catches_up(db_url: str, smtp: Sink,
                                                         tmp_path: Path) -> None:
    Cli(db_url, {})("db", "deploy")
    port = free_port()
    _instance_endpoint(db_url, port)
    path = str(tmp_path / "mirror.sqlite")
    env = {"SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_POLL_SECONDS": "0.2",
           "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_POLL_SECONDS": "0.2"}
    with serving(["--database-url", db_url], env) as (base, _):
        site = Site(base, smtp)
        consumer = Consumer(Mirror(path), _cli_feed(db_url), SECRET, port=port, every=0.2)
        consumer.start()
        ann = site.signup("ann@example.com")
        acme = site.workspace(ann, "Acme")
        bob, bob_id = site.join(ann, acme, "bob@example.com", "admin")
        cat, cat_id = site.join(bob, acme, "cat@example.com")
        until(lambda: consumer.mirror.members() == memberships(db_url), "the mirror in step")
        consumer.stop()
        consumer.mirror.close()

        # Stopped: more changes of every kind a membership has.
        site.role(ann, acme, bob_id, "member")
        beta = site.workspace(bob, "Beta")
        site.join(bob, beta, "dan@example.com", "admin")
        site.join(bob, beta, "cat@example.com", who=cat)
        site.new_address(cat, "cat.new@example.com")
        site.remove(ann, acme, bob_id)
        _, eve_id = site.join(ann, acme, "eve@example.com")
        site.ok(site.http.delete("/api/me", headers=cat), 204)
        gamma = site.workspace(ann, "Gamma")
        site.join(ann, gamma, "fay@example.com")
        site.ok(site.http.delete(f"/api/workspaces/{gamma}", headers=ann), 204)
        expected = memberships(db_url)
        assert {row[2] for row in expected} == {"ann@example.com", "bob@example.com",
                                                "dan@example.com", "eve@example.com"}

        # Started again, it catches up over HTTP with a service credential.
        tokens = MintedTokens(db_url, base)
        again = Consumer(Mirror(path), HttpFeed(base, tokens), SECRET, port=port, every=0.2)
        again.start()
        try:
            # The feed shows an event once every transaction older than its own has ended (on
            # a shared test server, other tests' too): wait for that, not for a clock.
            until(lambda: again.mirror.members() == expected, "caught up from the feed")
            site.role(ann, acme, eve_id, "admin")
            until(lambda: again.mirror.members() == memberships(db_url), "the last change")
            assert cat_id not in {row[1] for row in again.mirror.members()}
            assert tokens.minted >= 1
        finally:
            again.stop()
            again.mirror.close()
            tokens.apps.close()


def test_the_http_feed_says_why_it_is_refused(db_url: str, smtp: Sink) -> None:
    """A person's token, no token, and a service token the server does not accept: each a
    FeedError with the API's code (the catch-up logs it and tries again later)."""

    class Fixed:
        def __init__(self, token: str) -> None:
            self.value, self.asked = token, 0

        def token(self, *, fresh: bool = False) -> str:
            self.asked += 1
            return self.value

    Cli(db_url, {})("db", "deploy")
    with serving(["--database-url", db_url], {}) as (base, _):
        person = Site(base, smtp).signup("ann@example.com")["Authorization"].split()[1]
        with pytest.raises(FeedError) as refused:
            HttpFeed(base, Fixed(person)).read(None)
        assert refused.value.code == "service_credential_required"
        stale = Fixed("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.c2ln")
        with pytest.raises(FeedError) as refused:
            HttpFeed(base, stale).read(None)
        assert refused.value.code == "invalid_token"
        assert stale.asked == 2  # asked once more for a fresh token before giving up
        missing = ClientCredentials(base, "wsc_unknown", "wscs_wrong")
        with pytest.raises(FeedError):
            HttpFeed(base, missing).read(None)


def test_the_mirror_asks_the_token_endpoint_for_its_credential(db_url: str, smtp: Sink
                                                               ) -> None:
    """ClientCredentials against a served token endpoint: a token with `events:read`, kept
    until shortly before it expires."""
    Cli(db_url, {})("db", "deploy")
    with serving(["--database-url", db_url], {}) as (base, _):
        if httpx.post(f"{base}/oauth/token").status_code == 404:
            pytest.skip("no token endpoint on this branch yet (oidc-token)")
        apps = Apps(url=db_url, settings=Settings(database_url=db_url, base_url=base,
                                                  secret_key=SERVE_KEY,
                                                  _env_file=None))  # type: ignore[call-arg]
        try:
            client, secret = apps.client_with_secret("Membership mirror", ("events:read",))
            tokens = ClientCredentials(base, client.id, secret)
            first = tokens.token()
            assert tokens.token() == first and tokens.token(fresh=True) != first
            assert HttpFeed(base, tokens).read(None).items == []
        finally:
            apps.close()
