"""Abuse limits: invite emails (created or re-sent) per workspace, inviter and recipient;
sign-ups and workspace creations per client address; the client address behind proxies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.requests import Request

from tests.api.conftest import Api
from tests.conftest import NOT_CONFIRMATION
from workspaces import ratelimit
from workspaces.app import create_app
from workspaces.settings import Settings
from workspaces.web.deps import client_address


def _limits(api: Api, **values: int) -> None:
    for name, value in values.items():
        setattr(api.client.app.state.settings, name, value)  # type: ignore[attr-defined]


def _resend(api: Api, headers: dict[str, str], slug: str, invite_id: str) -> Any:
    return api.client.post(f"/api/workspaces/{slug}/invites/{invite_id}/resend", headers=headers)


def test_resends_count_with_creates(api: Api) -> None:
    """Found by attacking: 60 resends in a row all answered 200; 21 emails reached one address."""
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    _limits(api, invite_rate_limit_per_hour=3)
    invite_id = api.invite(owner, slug, "bob@example.com")["id"]
    assert [_resend(api, owner, slug, invite_id).status_code for _ in range(3)] == [200, 200, 429]
    refused = _resend(api, owner, slug, invite_id)
    api.error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.json()["error"]["retry_after"] == int(refused.headers["Retry-After"])
    # One email queued per accepted request (a quick resend withdraws the unsent one before
    # it); the refused resends queued nothing.
    assert api.db.sql(f"SELECT count(*) FROM email_outbox WHERE {NOT_CONFIRMATION}") == [(3,)]


def test_one_address_gets_at_most_its_daily_invites_from_all_workspaces(api: Api) -> None:
    _limits(api, invite_limit_per_recipient_all_senders_per_day=2)
    inviters = [api.signup(f"owner{n}@example.com") for n in range(3)]
    slugs = [api.workspace(headers, f"Space {n}") for n, headers in enumerate(inviters)]
    api.invite(inviters[0], slugs[0], "victim@example.com")
    api.invite(inviters[1], slugs[1], "VICTIM@example.com")
    third = api.client.post(f"/api/workspaces/{slugs[2]}/invites",
                            json={"email": "victim@example.com"}, headers=inviters[2])
    message = api.error(third, 429, "rate_limited")
    assert "this address" in message and "per day" in message
    assert "victim" not in message  # which addresses others invite is not told
    api.invite(inviters[2], slugs[2], "someone-else@example.com")
    assert api.db.sql("SELECT count(*) FROM workspace_invites "
                      "WHERE email = 'victim@example.com'") == [(2,)]


def test_a_stranger_cannot_spend_an_addresss_invites_for_the_real_employer(api: Api) -> None:
    """Found by attacking: one invite re-sent four times, then revoked, used up the address's
    daily budget, and its real employer could not invite it for the rest of the day."""
    _limits(api, invite_limit_per_recipient_per_day=5,
            invite_limit_per_recipient_all_senders_per_day=2)
    stranger = api.signup("mallory@example.com")
    squat = api.workspace(stranger, "Squat")
    invite_id = api.invite(stranger, squat, "dana@example.com")["id"]
    assert [_resend(api, stranger, squat, invite_id).status_code for _ in range(5)] == \
        [200, 200, 200, 200, 429]  # the stranger's own budget for the address: five emails
    assert api.client.post(f"/api/workspaces/{squat}/invites/{invite_id}/revoke",
                           headers=stranger).status_code == 200
    api.error(api.client.post(f"/api/workspaces/{squat}/invites",
                              json={"email": "dana@example.com"}, headers=stranger),
              429, "rate_limited")
    employer = api.signup("boss@example.com")
    api.invite(employer, api.workspace(employer, "Employer"), "dana@example.com")
    # Re-sends counted the stranger's invite once: one new invite from a third sender fits the
    # ceiling of two, and no more.
    third = api.signup("cat@example.com")
    api.error(api.client.post(f"/api/workspaces/{api.workspace(third, 'Cats')}/invites",
                              json={"email": "dana@example.com"}, headers=third),
              429, "rate_limited")


LOOK_ALIKE = "\u0441\u043e\u0441\u043e@example.com"  # Cyrillic letters that look like coco


def test_look_alike_probes_through_invites_count_against_the_inviter(api: Api) -> None:
    """Found by attacking: `email_confusable` was answered before the inviter's limit counted
    the attempt, so an inviter could ask without limit which look-alikes have accounts."""
    _limits(api, invite_limit_per_user_per_hour=2)
    api.signup("coco@example.com")
    prober = api.signup("mallory@example.com")
    slug = api.workspace(prober)
    for _ in range(2):
        api.error(api.client.post(f"/api/workspaces/{slug}/invites",
                                  json={"email": LOOK_ALIKE}, headers=prober),
                  422, "email_confusable")
    for address in (LOOK_ALIKE, "nobody@example.com"):
        api.error(api.client.post(f"/api/workspaces/{slug}/invites",
                                  json={"email": address}, headers=prober),
                  429, "rate_limited")
    assert api.db.sql("SELECT count(*) FROM workspace_invites") == [(0,)]


def test_look_alike_probes_through_the_invite_form_count_too(api: Api) -> None:
    _limits(api, invite_limit_per_user_per_hour=1)
    api.signup("coco@example.com")
    slug = api.workspace(api.signup("mallory@example.com"))
    page = api.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert api.client.post("/signin", data={"csrf_token": csrf[1],
                                            "email": "mallory@example.com",
                                            "password": "correct horse battery"}
                           ).status_code == 200
    tab = api.client.get(f"/w/{slug}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', tab.text)
    assert csrf
    codes = [api.client.post(f"/w/{slug}/invites", data={
        "csrf_token": csrf[1], "email": LOOK_ALIKE, "role": "member"}).status_code
        for _ in range(2)]
    assert codes == [422, 429]


def test_tags_and_dots_do_not_make_a_new_recipient(api: Api) -> None:
    """Found by attacking the fix: victim+1@, victim+2@... each had a budget of their own,
    although they reach one mailbox."""
    _limits(api, invite_limit_per_recipient_per_day=2)
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    api.invite(owner, slug, "victim+1@example.com")
    api.invite(owner, slug, "vic.tim@example.com")
    api.error(api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "victim+2@example.com"}, headers=owner),
              429, "rate_limited")
    api.invite(owner, slug, "victim@example.org")  # another domain, another mailbox


def test_an_admin_cannot_replace_an_expired_owner_invite(api: Api) -> None:
    """Found by attacking the fix: inviting the same address as member revoked an expired
    owner invite, an action on an owner invite the admin may not take."""
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "adm@example.com", "admin")
    admin = api.signup("adm@example.com")
    assert api.client.post(f"/api/invites/{token}/accept", headers=admin).status_code == 200
    api.invite(owner, slug, "heir@example.com", "owner")
    api.db.sql("UPDATE workspace_invites SET expires_at = created_at WHERE role = 'owner'")
    api.error(api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "heir@example.com"}, headers=admin),
              403, "role_above_inviter")
    assert api.db.sql("SELECT status FROM workspace_invites WHERE role = 'owner'") == [
        ("pending",)]
    api.invite(owner, slug, "heir@example.com", "owner")  # the owner may replace it


def test_one_ipv6_network_counts_as_one_client() -> None:
    same = {ratelimit.client_key(f"2001:db8:1:2::{n:x}") for n in range(1, 50)}
    assert len(same) == 1
    assert ratelimit.client_key("2001:db8:1:3::1") not in same
    assert ratelimit.client_key("192.0.2.1") != ratelimit.client_key("192.0.2.2")


def test_new_workspaces_bring_no_new_budget_for_one_inviter(api: Api) -> None:
    _limits(api, invite_limit_per_user_per_hour=2)
    owner = api.signup("ann@example.com")
    first, second = api.workspace(owner, "One"), api.workspace(owner, "Two")
    api.invite(owner, first, "p1@example.com")
    api.invite(owner, second, "p2@example.com")
    api.error(api.client.post(f"/api/workspaces/{api.workspace(owner, 'Three')}/invites",
                              json={"email": "p3@example.com"}, headers=owner),
              429, "rate_limited")
    other = api.signup("cat@example.com")  # another inviter has their own budget
    api.invite(other, api.workspace(other, "Cats"), "p3@example.com")


def test_sign_ups_per_client_are_limited_and_refused_ones_count(api: Api) -> None:
    _limits(api, signup_limit_per_client_per_hour=3)
    api.signup("ann@example.com")
    taken = api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": "long enough pw", "name": "Again"})
    api.error(taken, 409, "email_taken")  # answers whether an address has an account: counted
    api.signup("bob@example.com")
    over = api.client.post("/api/auth/signup", json={
        "email": "cat@example.com", "password": "long enough pw", "name": "Cat"})
    api.error(over, 429, "rate_limited")
    assert int(over.headers["Retry-After"]) >= 1
    assert api.db.sql("SELECT count(*) FROM users") == [(2,)]


def test_workspace_creations_per_client_are_limited(api: Api) -> None:
    _limits(api, workspace_limit_per_client_per_hour=2)
    owner = api.signup("ann@example.com")
    api.workspace(owner, "One")
    api.workspace(owner, "Two")
    api.error(api.client.post("/api/workspaces", json={"name": "Three"}, headers=owner),
              429, "rate_limited")
    assert api.db.sql("SELECT count(*) FROM workspaces") == [(2,)]


@dataclass
class Proxied:
    """A client that reaches the application through a trusted proxy on 127.0.0.1."""

    client: TestClient

    def post(self, path: str, source: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers={"X-Forwarded-For": source}, **kwargs)


@pytest.fixture
def proxied(settings: Settings) -> Iterator[Proxied]:
    behind = settings.model_copy(update={"trusted_proxies": "127.0.0.1",
                                         "signup_limit_per_client_per_hour": 2})
    with TestClient(create_app(behind), client=("127.0.0.1", 50000)) as client:
        yield Proxied(client)


def _signup(proxied: Proxied, email: str, source: str) -> int:
    return int(proxied.post("/api/auth/signup", source, json={
        "email": email, "password": "long enough pw", "name": "Someone"}).status_code)


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
        proxied: Proxied) -> None:
    assert [_signup(proxied, f"a{n}@example.com", "192.0.2.1") for n in range(3)] == [
        201, 201, 429]
    assert _signup(proxied, "b0@example.com", "192.0.2.2") == 201
    # A client cannot pick its address: left of what the proxy saw is not believed.
    assert _signup(proxied, "a9@example.com", "198.51.100.7, 192.0.2.1") == 429


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(api: Api) -> None:
    _limits(api, signup_limit_per_client_per_hour=2)
    codes = [api.client.post("/api/auth/signup", headers={"X-Forwarded-For": f"192.0.2.{n}"},
                             json={"email": f"p{n}@example.com", "password": "long enough pw",
                                   "name": "P"}).status_code for n in range(3)]
    assert codes == [201, 201, 429]


def _request(peer: str, forwarded: list[str], trusted: str) -> Request:
    class State:
        settings = Settings(trusted_proxies=trusted, _env_file=None)  # type: ignore[call-arg]

    class App:
        state = State()

    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "client": (peer, 1234), "app": App(), "query_string": b""})


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "client"), [
    ("203.0.113.9", ["192.0.2.1"], "", "203.0.113.9"),  # no proxies trusted: the peer
    ("203.0.113.9", ["192.0.2.1"], "127.0.0.1", "203.0.113.9"),  # peer not a trusted proxy
    ("127.0.0.1", ["192.0.2.1"], "127.0.0.1", "192.0.2.1"),
    ("127.0.0.1", ["6.6.6.6, 192.0.2.1"], "127.0.0.1", "192.0.2.1"),  # spoofed left part
    ("127.0.0.1", ["6.6.6.6", "192.0.2.1"], "127.0.0.1", "192.0.2.1"),  # two headers
    ("10.1.2.3", ["192.0.2.1, 10.0.0.5"], "10.0.0.0/8", "192.0.2.1"),  # a chain of proxies
    ("127.0.0.1", [], "127.0.0.1", "127.0.0.1"),  # no header: the proxy itself
    # Garbage from a trusted proxy: believed neither as the client nor as the proxy itself
    # (on loopback, that would pass for this machine: /metrics); its own shared limits.
    ("127.0.0.1", ["not-an-ip"], "127.0.0.1", "unknown"),
    ("127.0.0.1", ["6.6.6.6, unknown"], "127.0.0.1", "unknown"),
    ("127.0.0.1", ["unknown, 192.0.2.1"], "127.0.0.1", "192.0.2.1"),  # left of the client
    ("127.0.0.1", ["192.0.2.1:5678"], "127.0.0.1", "192.0.2.1"),  # with a port
    ("127.0.0.1", ["[2001:db8::1]:443"], "127.0.0.1", "2001:db8::1"),
    ("::1", ["2001:db8::1"], "::1", "2001:db8::1"),
])
def test_the_client_address_behind_proxies(peer: str, forwarded: list[str], trusted: str,
                                           client: str) -> None:
    assert client_address(_request(peer, forwarded, trusted)) == client


def test_a_trusted_proxies_value_that_is_no_address_list_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="not an IP address or CIDR network"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.internal", _env_file=None)  # type: ignore[call-arg]
