"""Our API with an app's access token (a JWT) acting for a user, on SQLite and PostgreSQL: what
its scopes open, the live checks (membership, grant), every token refused as it should be, and
the routes that only the account's own token may call."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine

from tests.api.conftest import Api
from tests.factories import Factory, User, Workspace
from tests.oauth.factory import App, Apps, Grant, bearer
from workspaces import clock
from workspaces.oauth import tokens
from workspaces.oauth.scopes import SERVICE_SCOPES

CHALLENGE = 'Bearer error="invalid_token"'


class People:
    """Ann owns Acme, where Bob is an admin and Cat a member; Ann also owns Beta. An app that
    users sign in to."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.apps = Apps(api)
        make: Factory = self.apps
        self.ann = make.user("ann@example.com", "Ann")
        self.acme = make.workspace(self.ann, "Acme")
        self.beta = make.workspace(self.ann, "Beta")
        self.bob = make.member(self.acme, "bob@example.com", "admin")
        self.cat = make.member(self.acme, "cat@example.com", "member")
        self.app = make_app(self.apps)

    def grant(self, user: User, *scopes: str,
              workspace: tuple[Workspace, Any] | None = None) -> Grant:
        return self.apps.grant(self.app, user=user, scopes=scopes or ("openid", "workspaces"),
                               workspace=workspace)

    def get(self, path: str, grant: Grant) -> Any:
        return self.api.client.get(path, headers=self.apps.headers(grant))


def make_app(apps: Apps) -> App:
    return apps.client("Acme Notes", scopes=("openid", "email", "profile", "workspaces",
                                             "workspace", "offline_access", *SERVICE_SCOPES))


@pytest.fixture
def people(api: Api) -> Iterator[People]:
    made = People(api)
    yield made
    made.apps.close()


def _refused(api: Api, response: Any, status: int, code: str) -> None:
    api.error(response, status, code)
    if status == 401:
        assert response.headers["www-authenticate"] == CHALLENGE


def test_a_users_token_reads_what_its_scopes_open(api: Api, people: People) -> None:
    grant = people.grant(people.bob, "openid", "workspaces")
    members = people.get(f"/api/workspaces/{people.acme.slug}/members", grant)
    assert members.status_code == 200, members.text
    assert {m["email"] for m in members.json()} == {
        "ann@example.com", "bob@example.com", "cat@example.com"}
    workspace = people.get(f"/api/workspaces/{people.acme.slug}", grant)
    assert workspace.json()["role"] == "admin"
    assert [w["slug"] for w in people.get("/api/workspaces", grant).json()] == [
        people.acme.slug]
    # `/api/me` shows the address and name too: with `email` and `profile` only.
    _refused(api, people.get("/api/me", grant), 403, "insufficient_scope")
    who = people.grant(people.bob, "openid", "email", "profile")
    assert people.get("/api/me", who).json()["email"] == "bob@example.com"
    # Nothing of their workspaces.
    refused = people.get(f"/api/workspaces/{people.acme.slug}/members", who)
    _refused(api, refused, 403, "insufficient_scope")
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="members:read"')
    # Without `openid`, /api/me is closed too.
    _refused(api, people.get("/api/me", people.grant(people.bob, "workspaces")), 403,
             "insufficient_scope")


def test_a_users_token_acts_within_the_users_role_and_its_scopes(api: Api,
                                                                  people: People) -> None:
    path = f"/api/workspaces/{people.acme.slug}/members/{people.cat.id}"
    # A member's token with every scope still cannot do what a member cannot.
    cat = people.apps.headers(people.grant(people.cat, "workspaces", "members:write",
                                           "invites:write"))
    api.error(api.client.post(f"/api/workspaces/{people.acme.slug}/invites",
                              json={"email": "dan@example.com", "role": "member"}, headers=cat),
              403, "insufficient_role")
    reader = people.apps.headers(people.grant(people.bob, "openid", "workspaces"))
    refused = api.client.patch(path, json={"role": "admin"}, headers=reader)
    _refused(api, refused, 403, "insufficient_scope")
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="members:write"')
    writer = people.apps.headers(people.grant(people.bob, "workspaces", "members:write"))
    changed = api.client.patch(path, json={"role": "admin"}, headers=writer)
    assert changed.status_code == 200, changed.text
    # An admin's token is an admin's: no owner made, with any scope.
    owner = api.client.patch(path, json={"role": "owner"}, headers=writer)
    _refused(api, owner, 403, "owner_required")
    # The actor of what an app's token does is the user.
    trail = api.client.get(f"/api/workspaces/{people.acme.slug}/audit",
                           headers=people.ann.headers).json()["items"]
    assert trail[0]["action"] == "role_changed"
    assert (trail[0]["actor_email"], trail[0]["actor_client_id"]) == ("bob@example.com", None)


def test_a_removed_members_token_is_refused_at_once(api: Api, people: People) -> None:
    grant = people.grant(people.cat, "openid", "workspaces")
    path = f"/api/workspaces/{people.acme.slug}/members"
    assert people.get(path, grant).status_code == 200
    removed = api.client.delete(f"{path}/{people.cat.id}", headers=people.ann.headers)
    assert removed.status_code == 204, removed.text
    # The same unexpired token: the membership is read live on every request.
    _refused(api, people.get(path, grant), 404, "workspace_not_found")
    assert people.get("/api/workspaces", grant).json() == []


def test_a_token_of_a_revoked_grant_or_a_deleted_app_is_refused(api: Api,
                                                                people: People) -> None:
    path = f"/api/workspaces/{people.acme.slug}/members"
    grant = people.grant(people.bob, "openid", "email", "profile", "workspaces")
    token = people.apps.token(grant)
    assert api.client.get(path, headers=bearer(token)).status_code == 200
    assert api.client.get("/api/me", headers=bearer(token)).status_code == 200
    people.apps.revoke(grant)
    for route in (path, "/api/me", "/api/workspaces"):
        _refused(api, api.client.get(route, headers=bearer(token)), 401, "invalid_token")
    other = people.grant(people.bob)
    people.apps.delete_client(people.app)  # its grants go with it
    _refused(api, people.get(path, other), 401, "invalid_token")


def test_a_token_for_a_picked_workspace_reaches_only_that_one(api: Api,
                                                               people: People) -> None:
    grant = people.grant(people.ann, "openid", "workspace", workspace=(people.acme, "owner"))
    assert people.get(f"/api/workspaces/{people.acme.slug}/members", grant).status_code == 200
    _refused(api, people.get(f"/api/workspaces/{people.beta.slug}/members", grant), 404,
             "workspace_not_found")
    assert [w["slug"] for w in people.get("/api/workspaces", grant).json()] == [
        people.acme.slug]
    both = people.grant(people.ann, "workspaces", "workspace", workspace=(people.acme, "owner"))
    assert people.get(f"/api/workspaces/{people.beta.slug}/members", both).status_code == 200


def _hs256_with_public_key(apps: Apps, claims: dict[str, Any]) -> str:
    """An HS256 token keyed with our published public key: the key-confusion attack."""
    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signer = apps.signer()
    public = signer.key.as_pem(private=False)
    signing_input = part({"alg": "HS256", "typ": "at+jwt", "kid": signer.kid}) + b"." + \
        part(claims)
    mac = hmac.new(public, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def test_every_token_that_is_not_ours_or_not_now_is_refused(api: Api, people: People) -> None:
    apps, grant = people.apps, people.grant(people.bob)
    path = f"/api/workspaces/{people.acme.slug}/members"
    assert api.client.get(path, headers=apps.headers(grant)).status_code == 200
    now = clock.now()
    claims = apps.claims(grant)
    id_token = tokens.mint_id_token(apps.signer(), api.settings, subject=str(people.bob.id),
                                    client_id=grant.client_id, auth_time=now, sid=None,
                                    claims={"email": "bob@example.com"})
    forged = {
        "expired": apps.token(grant, now=now - timedelta(minutes=11)),
        "from the future": apps.token(grant, now=now + timedelta(minutes=5)),
        "alg none": _unsigned(claims),
        "HS256 with the public key": _hs256_with_public_key(apps, claims),
        "another audience": apps.signed(apps.claims(grant, aud="https://other.example/api")),
        "another issuer": apps.signed(apps.claims(grant, iss="https://evil.example")),
        "an ID token": id_token,
        "typ JWT": apps.signed(claims, typ="JWT"),
        "unknown kid": apps.signed(claims, kid="not-ours"),
        "tampered": apps.token(grant)[:-6] + "AAAAAA",
        "no gid": apps.signed({k: v for k, v in claims.items() if k != "gid"}),
        "garbage": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    }
    for why, token in forged.items():
        answer = api.client.get(path, headers=bearer(token))
        assert answer.status_code == 401, (why, answer.text)
        _refused(api, answer, 401, "invalid_token")
    # Within the clock skew, an expired token still passes; past it, not.
    token = apps.token(grant)
    with time_machine.travel(now + timedelta(minutes=10, seconds=20), tick=False):
        assert api.client.get(path, headers=bearer(token)).status_code == 200
    with time_machine.travel(now + timedelta(minutes=10, seconds=40), tick=False):
        _refused(api, api.client.get(path, headers=bearer(token)), 401, "invalid_token")


def test_an_opaque_token_is_refused_with_the_same_challenge(api: Api, people: People) -> None:
    answer = api.client.get(f"/api/workspaces/{people.acme.slug}/members",
                            headers=bearer("wst_not-a-token"))
    _refused(api, answer, 401, "invalid_token")
    # Our own tokens are unlimited, as ever.
    assert api.client.delete(f"/api/workspaces/{people.beta.slug}",
                             headers=people.ann.headers).status_code == 204


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/api/me/password", {"current_password": "correct horse battery",
                                  "new_password": "another horse battery"}),
    ("post", "/api/me/email", {"email": "new@example.com",
                               "current_password": "correct horse battery"}),
    ("get", "/api/me/sessions", None),
    ("delete", "/api/me", None),
    ("patch", "/api/me", {"name": "Bobby"}),
    ("post", "/api/auth/logout", None),
    ("get", "/api/me/invites", None),
    ("get", "/api/me/events", None),
    ("post", "/api/workspaces", {"name": "Gamma"}),
    ("patch", "/api/workspaces/{acme}", {"name": "Acme Inc"}),
    ("delete", "/api/workspaces/{acme}", None),
    ("post", "/api/workspaces/{acme}/transfer", {"user_id": "{cat}", "step_down": False}),
    ("post", "/api/invites/some-token/accept", None),
    ("post", "/api/invites/some-token/decline", None),
])
def test_the_account_and_a_workspace_as_a_whole_refuse_an_apps_token(
        api: Api, people: People, method: str, path: str, body: dict[str, Any] | None) -> None:
    """However broad its scopes: these are the account's own token's."""
    everything = people.grant(people.ann, "openid", "email", "profile", "workspaces",
                              "offline_access", *SERVICE_SCOPES)
    path = path.format(acme=people.acme.slug)
    if body is not None:
        body = {k: v.format(cat=people.cat.id) if isinstance(v, str) else v
                for k, v in body.items()}
    answer = api.client.request(method.upper(), path, json=body,
                                headers=people.apps.headers(everything))
    api.error(answer, 403, "insufficient_scope")
    assert answer.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    assert api.client.get("/api/me", headers=people.ann.headers).status_code == 200


def test_a_token_verified_before_is_refused_once_its_signing_key_is_deleted(
        api: Api, people: People) -> None:
    """Each process remembers the tokens it verified (`keys.verified_access_token`), as long as
    the key that signed one is published: deleting a leaked key (docs/integration.md) refuses
    its tokens within the key set's refresh, remembered or not."""
    from workspaces.oauth import keys

    apps, grant = people.apps, people.grant(people.bob)
    path = f"/api/workspaces/{people.acme.slug}/members"
    token = apps.token(grant)
    now = clock.now()
    with time_machine.travel(now, tick=False):  # the key set read once, not again
        for _ in range(2):  # verified, then remembered
            assert api.client.get(path, headers=bearer(token)).status_code == 200
        assert any(memo[3] == token for memo in keys._verified)
        kid = tokens.unverified_kid(token)
        api.db.sql(f"DELETE FROM signing_keys WHERE kid = '{kid}'")
        assert api.client.get(path, headers=bearer(token)).status_code == 200  # not read yet
    later = now + timedelta(seconds=keys.REFRESH_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        _refused(api, api.client.get(path, headers=bearer(token)), 401, "invalid_token")


def test_requests_racing_with_a_remembered_token_that_expired_are_refused_alike(
        api: Api, people: People) -> None:
    """Two requests that find the same remembered token expired both drop it: each is refused
    with 401, neither trips over the other (a KeyError was a 500)."""
    from workspaces.oauth import keys

    apps, grant = people.apps, people.grant(people.bob)
    token = apps.token(grant)
    now = clock.now()
    with time_machine.travel(now, tick=False):
        path = f"/api/workspaces/{people.acme.slug}/members"
        assert api.client.get(path, headers=bearer(token)).status_code == 200  # remembered
    app: Any = api.client.app
    assert api.client.portal is not None

    async def race() -> list[BaseException | tokens.AccessClaims]:
        async def one() -> tokens.AccessClaims:
            async with app.state.reader.connect() as conn:
                return await keys.verified_access_token(conn, api.settings, token)

        return list(await asyncio.gather(one(), one(), return_exceptions=True))

    with time_machine.travel(now + timedelta(minutes=11), tick=False):
        outcomes = api.client.portal.call(race)
    assert [type(o).__name__ for o in outcomes] == ["InvalidAccessToken"] * 2, outcomes
