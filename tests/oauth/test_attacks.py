"""What an attacker's pass over the OpenID provider found, each fixed, on SQLite and PostgreSQL:
a service client borrowing the operator's webhook networks, strangers locking a client out of
the token endpoint, a JWT nested past the JSON parser's depth, ID tokens in the log, and a
browser app unable to read the token endpoint's answer."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import Api
from tests.conftest import Cli
from tests.factories import Factory
from tests.oauth.conftest import REDIRECT_URI, VERIFIER, Provider, basic
from tests.oauth.factory import Apps
from tests.webhook_receiver import Receiver, add_endpoint, new_secret
from workspaces import logs
from workspaces.app import create_app
from workspaces.db import create_app_engine, parse_url
from workspaces.events import changes
from workspaces.events.tell import SYSTEM, tell
from workspaces.models import webhook_deliveries
from workspaces.security import secret_key
from workspaces.settings import Settings
from workspaces.webhooks.delivery import Deliverer

LOCAL = "127.0.0.0/8"


def _operator_only(settings: Settings) -> Settings:
    """An operator who lets the instance's receivers be on this machine, and nobody else's."""
    return settings.model_copy(update={"webhook_allowed_networks": LOCAL,
                                       "workspace_webhook_allowed_networks": ""})


def test_a_service_clients_webhook_url_gets_no_operator_network(settings: Settings) -> None:
    """Found by attacking: a product's backend with webhooks:write saved an instance endpoint
    at http://127.0.0.1 (WEBHOOK_ALLOWED_NETWORKS, meant for the operator's own receivers),
    sent it a test message and read the internal service's answer in the delivery log."""
    strict = _operator_only(settings)
    with TestClient(create_app(strict)) as client:
        api = Api(client, Cli(strict.database_url, {}))
        apps = Apps(api)
        try:
            crm = apps.headers(apps.grant(apps.client("Acme CRM", scopes=("webhooks:write",))))
            for url in ("http://127.0.0.1:9/hook", "https://127.0.0.1/hook",
                        "https://[::ffff:127.0.0.1]/hook", "https://10.1.2.3/hook"):
                api.error(client.post("/api/webhooks", json={"url": url}, headers=crm), 422,
                          "webhook_url_not_allowed")
            # The operator's own endpoint on the allowed network: the client may manage it,
            # but cannot point it at another internal address.
            theirs = add_endpoint(strict.database_url, "http://127.0.0.1:9/operator",
                                  key=secret_key(strict), secret=new_secret())
            one = f"/api/webhooks/{theirs}"
            api.error(client.patch(one, json={"url": "http://127.0.0.1:8080/admin"},
                                   headers=crm), 422, "webhook_url_not_allowed")
            described = client.patch(one, json={"description": "Ours"}, headers=crm)
            assert described.status_code == 200, described.text
            assert described.json()["url"] == "http://127.0.0.1:9/operator"
        finally:
            apps.close()


def _deliver_one(settings: Settings) -> None:
    """One instance event, and one round of delivery, by a deliverer with `settings`."""
    async def main() -> None:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=2)
        deliverer = Deliverer(engine, settings, secret_key(settings))
        try:
            async with engine.begin() as conn:
                await tell(conn, changes.user_deleted(
                    changes.user(uuid.uuid4(), "gone@example.com", "Gone"), SYSTEM))
            assert await deliverer.deliver_due() >= 1
        finally:
            await deliverer.close()
            await engine.dispose()
    asyncio.run(main())


def test_a_service_clients_endpoint_is_judged_as_a_workspace_admins_at_delivery(
        settings: Settings, receiver: Receiver) -> None:
    """Each attempt checks the address again (DNS rebinding): by the rules of whoever set the
    URL. Saved by a client while WORKSPACE_WEBHOOK_ALLOWED_NETWORKS admitted 127.0.0.0/8 (a
    development setting), emptied since: the operator's networks do not take over."""
    both = settings.model_copy(update={"webhook_allowed_networks": LOCAL,
                                       "workspace_webhook_allowed_networks": LOCAL})
    with TestClient(create_app(both)) as client:
        apps = Apps(url=both.database_url, settings=both)
        try:
            crm = apps.headers(apps.grant(apps.client("Acme CRM", scopes=("webhooks:write",))))
            made = client.post("/api/webhooks", json={"url": receiver.url()}, headers=crm)
            assert made.status_code == 201, made.text
        finally:
            apps.close()
    _deliver_one(_operator_only(settings))
    assert receiver.received() == []
    rows = Factory(settings.database_url)
    try:
        with rows.engine.connect() as conn:
            [refused] = conn.execute(select(webhook_deliveries.c.last_error)).scalars()
    finally:
        rows.close()
    assert refused.startswith("not sent: This webhook URL cannot be used: ")
    # The operator's endpoint at the same address is delivered to under the same settings.
    add_endpoint(settings.database_url, receiver.url(), key=secret_key(settings),
                 secret=new_secret())
    _deliver_one(_operator_only(settings))
    assert len(receiver.received()) == 1


@pytest.fixture
def proxied(settings: Settings) -> Iterator[Provider]:
    """The token endpoint behind a trusted proxy (each request names its client address),
    with low limits."""
    limited = settings.model_copy(update={
        "trusted_proxies": "127.0.0.1", "token_limit_per_client_per_minute": 5,
        "token_limit_per_address_per_minute": 8, "client_auth_failures_per_client_per_hour": 3})
    with TestClient(create_app(limited), client=("127.0.0.1", 50000)) as client:
        make = Factory(limited.database_url)
        try:
            yield Provider(Api(client, Cli(limited.database_url, {})), make)
        finally:
            make.close()


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_a_stranger_naming_a_client_cannot_lock_it_out(proxied: Provider) -> None:
    """Found by attacking: twenty wrong secrets from anyone, and a client was refused for an
    hour, its right secret included; a public client (whose id every browser sees) the same
    with a made-up secret; and token requests merely naming a client used up its minute."""
    backend, spa = proxied.client(), proxied.client(public=True)
    http = proxied.http
    owner, strangers = "192.0.2.10", ("203.0.113.66", "203.0.113.67")
    for stranger in strangers:
        for _ in range(3):
            proxied.refused(http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                      headers={**basic(backend.id, "wscs_guess"),
                                               **_from(stranger)}), 401, "invalid_client")
            proxied.refused(http.post("/oauth/token", headers=_from(stranger), data={
                "grant_type": "client_credentials", "client_id": spa.id,
                "client_secret": "guess"}), 401, "invalid_client")
        # Past the limit, that address is refused, whatever it sends.
        proxied.refused(http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  headers={**backend.auth, **_from(stranger)}), 429,
                        "slow_down")
    # Many requests naming the public client, from anywhere: not its minute's budget.
    for n in range(6):
        proxied.refused(http.post("/oauth/token", headers=_from(f"198.51.100.{n}"), data={
            "grant_type": "refresh_token", "refresh_token": "wsr_guess",
            "client_id": spa.id}), 400, "invalid_grant")
    assert http.post("/oauth/token", data={"grant_type": "client_credentials"},
                     headers={**backend.auth, **_from(owner)}).status_code == 200
    proxied.refused(http.post("/oauth/token", headers=_from(owner), data={
        "grant_type": "refresh_token", "refresh_token": "wsr_guess", "client_id": spa.id}),
        400, "invalid_grant")
    # A client's own requests still count against its minute, from any of its addresses.
    for n in range(4):
        assert http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers={**backend.auth, **_from(f"192.0.2.{20 + n}")}
                         ).status_code == 200
    proxied.refused(http.post("/oauth/token", data={"grant_type": "client_credentials"},
                              headers={**backend.auth, **_from(owner)}), 429, "slow_down")


def _nested(depth: int) -> str:
    return base64.urlsafe_b64encode(("[" * depth + "]" * depth).encode()).rstrip(b"=").decode()


def test_a_jwt_nested_past_the_json_parsers_depth_is_refused(op: Provider) -> None:
    """Found by attacking: a header of a few thousand nested arrays was a 500 on every
    endpoint that reads a JWT (our API, userinfo, introspection, revocation, logout)."""
    app = op.client()
    user = op.make.user("ann@example.com", "Ann")
    real = op.redeem(app, op.code(app, user))["access_token"]
    forged = f"{_nested(5000)}.{real.split('.', 1)[1]}"
    bearer = {"Authorization": f"Bearer {forged}"}
    api = op.api
    api.error(op.http.get("/api/workspaces", headers=bearer), 401, "invalid_token")
    op.refused(op.userinfo(forged), 401, "invalid_token")
    assert op.introspect(app, forged) == {"active": False}
    assert op.http.post("/oauth/revoke", data={"token": forged},
                        headers=app.auth).status_code == 200
    hinted = op.http.get("/oauth/logout", params={"id_token_hint": forged},
                         follow_redirects=False)
    assert hinted.status_code == 200, hinted.text  # our own page: the hint is not believed
    assert op.userinfo(real).status_code == 200  # the real token was never touched


def test_an_id_token_in_a_logout_link_is_kept_out_of_the_log(op: Provider) -> None:
    """Found by attacking: RP-initiated logout is a GET whose `id_token_hint` (the user's
    email, name and workspaces, signed) was written whole into every access line."""
    app = op.client()
    user = op.make.user("ann@example.com", "Ann")
    issued = op.redeem(app, op.code(app, user, scopes=("openid", "email", "profile")))
    id_token, access = issued["id_token"], issued["access_token"]
    line = (f'127.0.0.1 - "GET /oauth/logout?id_token_hint={id_token}'
            f'&post_logout_redirect_uri={REDIRECT_URI}&state=af0ifjsldkj HTTP/1.1" 302')
    shown = logs.redact(line)
    assert shown == (f'127.0.0.1 - "GET /oauth/logout?id_token_hint={logs.REDACTED}'
                     f'&post_logout_redirect_uri={REDIRECT_URI}&state=af0ifjsldkj HTTP/1.1"'
                     " 302")
    for token in (id_token, access):  # anywhere: a path, JSON, a sentence
        for part in token.split("."):
            assert part not in logs.redact(f"/x/{token}/y {{\"t\": \"{token}\"}} see {token}.")
    assert logs.redact("eyJhbGciOi is not a token") == "eyJhbGciOi is not a token"



def test_a_browser_app_reads_the_token_endpoints_answers_from_its_own_origin(
        op: Provider) -> None:
    """Found by attacking: a single-page app (a public client) posted its code from its own
    origin, the code was spent, and the browser withheld the answer (no CORS header): the
    tokens were lost. Any origin may read the token, revocation and userinfo answers (no
    credentials: they read no cookie); introspection, for servers, stays closed."""
    spa = op.client(public=True)
    user = op.make.user("ann@example.com", "Ann")
    origin = {"Origin": "https://spa.example.com"}
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/userinfo"):
        asked = op.http.options(path, headers={
            **origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert asked.status_code == 204, (path, asked.text)
        assert asked.headers["access-control-allow-origin"] == "*"
        assert "POST" in asked.headers["access-control-allow-methods"]
        assert "Authorization" in asked.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in asked.headers
    issued = op.http.post("/oauth/token", headers=origin, data={
        "grant_type": "authorization_code", "code": op.code(spa, user),
        "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER, "client_id": spa.id})
    assert issued.status_code == 200, issued.text
    assert issued.headers["access-control-allow-origin"] == "*"
    assert issued.headers["cache-control"] == "no-store"
    refused = op.http.post("/oauth/token", headers=origin, data={
        "grant_type": "refresh_token", "refresh_token": "wsr_guess", "client_id": spa.id})
    assert refused.status_code == 400 and refused.headers["access-control-allow-origin"] == "*"
    access = issued.json()["access_token"]
    claims = op.http.get("/oauth/userinfo", headers={**origin,
                                                     "Authorization": f"Bearer {access}"})
    assert claims.status_code == 200 and claims.headers["access-control-allow-origin"] == "*"
    unknown = op.http.get("/oauth/userinfo", headers={**origin, "Authorization": "Bearer x.y.z"})
    assert unknown.status_code == 401
    assert "WWW-Authenticate" in unknown.headers["access-control-expose-headers"]
    revoked = op.http.post("/oauth/revoke", headers=origin,
                           data={"token": issued.json()["refresh_token"], "client_id": spa.id})
    assert revoked.status_code == 200 and revoked.headers["access-control-allow-origin"] == "*"
    backend = op.client()
    inspected = op.http.post("/oauth/introspect", headers={**origin, **backend.auth},
                             data={"token": access})
    assert inspected.status_code == 200
    assert "access-control-allow-origin" not in inspected.headers
    assert op.http.options("/oauth/introspect", headers=origin).status_code == 405


def test_a_scope_taken_from_a_client_ends_its_service_tokens_at_once(
        op: Provider, settings: Settings) -> None:
    """Found by attacking: after `clients update --scope` took members:write away, the
    backend's service token kept it until it expired (ACCESS_TOKEN_TTL_MINUTES), while a
    narrowed --workspace took effect at once. Its service grants now end (as on a rotated
    secret); it asks for a new token, which holds what it has now."""
    backend = op.client(scopes=("members:read", "members:write", "events:read"))
    owner = op.make.user("ann@example.com", "Ann")
    acme = op.make.workspace(owner, "Acme")
    member = op.make.member(acme, "bob@example.com", "member")
    token = op.token(backend, grant_type="client_credentials").json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    path = f"/api/workspaces/{acme.slug}/members"
    assert op.http.get(path, headers=bearer).status_code == 200
    kept = op.api.db("clients", "update", backend.id, "--scope", "members:read events:read",
                     "--database-url", settings.database_url)
    assert kept.exit_code == 0, kept.stderr
    op.api.error(op.http.get(path, headers=bearer), 401, "invalid_token")
    op.api.error(op.http.patch(f"{path}/{member.id}", json={"role": "admin"}, headers=bearer),
                 401, "invalid_token")
    again = op.token(backend, grant_type="client_credentials").json()
    assert again["scope"] == "members:read events:read"
    fresh = {"Authorization": f"Bearer {again['access_token']}"}
    assert op.http.get(path, headers=fresh).status_code == 200
    # Widening (or a change that takes no service scope) leaves its tokens alone.
    widened = op.api.db("clients", "update", backend.id, "--scope",
                        "members:read events:read invites:write", "--database-url",
                        settings.database_url)
    assert widened.exit_code == 0, widened.stderr
    assert op.http.get(path, headers=fresh).status_code == 200


def test_an_app_granted_openid_alone_learns_no_address_or_name(api: Api) -> None:
    """Found by attacking: the consent page said "Know who you are" for `openid`, the ID
    token and userinfo left the address and name out without `email` and `profile`, but
    `GET /api/me` with that app's token answered both."""
    apps = Apps(api)
    try:
        ann = apps.user("ann@example.com", "Ann")
        app = apps.client("Acme Notes", scopes=("openid", "email", "profile"))
        for scopes in (("openid",), ("openid", "email"), ("openid", "profile")):
            refused = api.client.get("/api/me", headers=apps.headers(
                apps.grant(app, user=ann, scopes=scopes)))
            api.error(refused, 403, "insufficient_scope")
            assert "ann@example.com" not in refused.text
            assert refused.headers["www-authenticate"] == (
                'Bearer error="insufficient_scope", scope="openid email profile"')
        full = api.client.get("/api/me", headers=apps.headers(
            apps.grant(app, user=ann, scopes=("openid", "email", "profile"))))
        assert full.status_code == 200 and full.json()["email"] == "ann@example.com"
    finally:
        apps.close()


def test_the_consent_page_says_that_workspaces_shows_their_members() -> None:
    """Found by attacking: `workspaces` and `workspace` also open the members of those
    workspaces (their addresses and names) to the app, and the consent page said only "See
    the workspaces you belong to and your role in each"."""
    from workspaces.oauth.scopes import DESCRIPTIONS, USER_API_SCOPES

    for scope, opened in USER_API_SCOPES.items():
        if "members:read" in opened:
            assert "members" in DESCRIPTIONS[scope], scope
