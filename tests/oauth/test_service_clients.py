"""A product's backend with a service credential (a client_credentials token), on SQLite and
PostgreSQL: it acts on workspaces with an admin's rank (never an owner's), only on its own when
it is restricted, is named as the actor in events and the audit trail, reads the instance feed
and manages the instance's webhook endpoints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.conftest import Api, settled
from tests.conftest import Cli, Sink
from tests.factories import PASSWORD
from tests.oauth.factory import App, Apps, bearer
from workspaces.models import events, outbox, rate_limit_counters, webhook_deliveries
from workspaces.settings import Settings

LOCAL = "127.0.0.0/8"
HOOK = "http://127.0.0.1:9/hook"  # nothing is sent: only saved and queued


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Receivers on this machine allowed, as an operator would."""
    return settings.model_copy(update={"webhook_allowed_networks": LOCAL,
                                       "workspace_webhook_allowed_networks": LOCAL})


class Product:
    """Ann owns Acme (Bob is a member) and Beta; Zed owns Zeta. A product's backend, its
    client registered for every workspace, and another registered for Acme only."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.apps = make = Apps(api)
        self.ann = make.user("ann@example.com", "Ann")
        self.acme = make.workspace(self.ann, "Acme")
        self.beta = make.workspace(self.ann, "Beta")
        self.bob = make.member(self.acme, "bob@example.com", "member")
        self.zed = make.user("zed@example.com", "Zed")
        self.zeta = make.workspace(self.zed, "Zeta")
        self.crm = make.client("Acme CRM")
        self.sync = make.client("Acme Sync", workspaces=[self.acme])

    def headers(self, app: App, *scopes: str) -> dict[str, str]:
        """A fresh service token of `app` (all its scopes, or these)."""
        grant = self.apps.grant(app, scopes=scopes) if scopes else self.apps.grant(app)
        return self.apps.headers(grant)

    def members(self, slug: str, headers: dict[str, str]) -> Any:
        return self.api.client.get(f"/api/workspaces/{slug}/members", headers=headers)


@pytest.fixture
def product(api: Api) -> Iterator[Product]:
    made = Product(api)
    yield made
    made.apps.close()


def test_a_service_client_lists_members_of_every_workspace(api: Api, product: Product) -> None:
    crm = product.headers(product.crm, "members:read")
    for place in (product.acme, product.zeta):
        listed = product.members(place.slug, crm)
        assert listed.status_code == 200, listed.text
    assert {m["email"] for m in product.members(product.acme.slug, crm).json()} == {
        "ann@example.com", "bob@example.com"}
    workspace = api.client.get(f"/api/workspaces/{product.zeta.slug}",
                               headers=product.headers(product.crm, "workspaces:read"))
    assert workspace.json()["role"] == "admin"  # the rank it acts with
    api.error(product.members(product.acme.slug, product.headers(product.crm, "events:read")),
              403, "insufficient_scope")
    # A service token is no one's: nothing that needs a person.
    api.error(api.client.get("/api/workspaces", headers=product.headers(product.crm)), 403,
              "user_required")
    api.error(api.client.get("/api/me", headers=product.headers(product.crm)), 403,
              "insufficient_scope")


def test_a_restricted_client_reaches_its_own_workspaces_only(api: Api,
                                                            product: Product) -> None:
    sync = product.headers(product.sync)
    assert product.members(product.acme.slug, sync).status_code == 200
    for place in (product.beta, product.zeta):
        stranger = product.members(place.slug, sync)
        api.error(stranger, 404, "workspace_not_found")
        unknown = product.members("no-such-workspace", sync)
        assert unknown.json()["error"]["message"].replace("no-such-workspace", place.slug) == \
            stranger.json()["error"]["message"]  # a stranger's workspace reads as none
    api.error(api.client.get("/api/events", headers=sync), 403, "client_restricted")
    api.error(api.client.get("/api/webhooks", headers=sync), 403, "client_restricted")


def test_a_deleted_or_revoked_clients_token_is_refused(api: Api, product: Product) -> None:
    grant = product.apps.grant(product.crm)
    token = product.apps.token(grant)
    assert product.members(product.acme.slug, bearer(token)).status_code == 200
    product.apps.revoke(grant)
    for answer in (product.members(product.acme.slug, bearer(token)),
                   api.client.get("/api/events", headers=bearer(token))):
        api.error(answer, 401, "invalid_token")
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    live = product.headers(product.crm)
    product.apps.delete_client(product.crm)
    for answer in (product.members(product.acme.slug, live),
                   api.client.get("/api/events", headers=live),
                   api.client.get("/api/webhooks", headers=live)):
        api.error(answer, 401, "invalid_token")


def _sign_in(api: Api, email: str) -> None:
    page = api.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert api.client.post("/signin", data={"csrf_token": csrf[1], "email": email,
                                            "password": PASSWORD}).status_code == 200


def _payloads(product: Product, kind: str) -> list[dict[str, Any]]:
    with product.apps.engine.connect() as conn:
        return [dict(p) for p in conn.execute(
            select(events.c.payload).where(events.c.type == kind)
            .order_by(events.c.position)).scalars()]


def test_a_service_client_invites_as_itself(api: Api, product: Product, smtp: Sink) -> None:
    crm = product.headers(product.crm, "invites:write", "events:read")
    path = f"/api/workspaces/{product.acme.slug}/invites"
    made = api.client.post(path, json={"email": "cat@example.com", "role": "admin"},
                           headers=crm)
    assert made.status_code == 201, made.text
    assert made.json()["created_by_user_id"] is None
    # Never an owner: neither invited, nor granted, nor handed the workspace.
    api.error(api.client.post(path, json={"email": "dan@example.com", "role": "owner"},
                              headers=crm), 403, "role_above_inviter")
    writer = product.headers(product.crm)
    api.error(api.client.patch(f"/api/workspaces/{product.acme.slug}/members/{product.bob.id}",
                               json={"role": "owner"}, headers=writer), 403, "owner_required")
    api.error(api.client.delete(f"/api/workspaces/{product.acme.slug}/members/{product.ann.id}",
                                headers=writer), 403, "owner_required")
    api.error(api.client.delete(f"/api/workspaces/{product.acme.slug}", headers=writer),
              403, "insufficient_scope")
    # The event names the client as the actor; the feed it reads shows it.
    settled(api.db.url)
    feed = api.client.get("/api/events", params={"type": "invite.created"}, headers=crm)
    assert feed.status_code == 200, feed.text
    [told] = feed.json()["items"]
    assert told["actor"] == {"type": "client", "id": product.crm.id, "name": "Acme CRM"}
    assert _payloads(product, "invite.created") == [told]
    # The operator's listing of the feed names it too.
    listed = Cli(api.db.url, {})("events", "list", "--type", "invite.created",
                                 "--database-url", api.db.url)
    assert listed.exit_code == 0, listed.stderr
    assert "invite.created" in listed.stdout and "  Acme CRM  " in listed.stdout
    # So does the audit trail, through the API and on the Audit log tab.
    [line] = [e for e in api.client.get(f"/api/workspaces/{product.acme.slug}/audit",
                                        headers=product.ann.headers).json()["items"]
              if e["action"] == "created"]
    assert (line["actor_client_id"], line["actor_client_name"], line["actor_email"],
            line["actor_user_id"]) == (product.crm.id, "Acme CRM", None, None)
    _sign_in(api, "ann@example.com")
    tab = api.client.get(f"/w/{product.acme.slug}/audit")
    assert "Acme CRM (service client)" in tab.text
    # The invitee reads who invited them: the client, by the name it was registered with.
    with product.apps.engine.connect() as conn:
        mail = conn.execute(select(outbox.c.subject, outbox.c.body_text)
                            .where(outbox.c.to_address == "cat@example.com")).one()
    assert mail.subject.startswith("“Acme CRM” invited you to “Acme”")
    assert mail.body_text.startswith("“Acme CRM” invited you to join Acme")
    # Its invitations count against its own limit, not a person's.
    with product.apps.engine.connect() as conn:
        keys = set(conn.execute(select(rate_limit_counters.c.key)).scalars())
    assert f"invites:by:client:{product.crm.id}" in keys


def test_the_instance_feed_is_a_service_clients_with_events_read(api: Api,
                                                                 product: Product) -> None:
    added = api.client.post(f"/api/workspaces/{product.zeta.slug}/invites",
                            json={"email": "yan@example.com", "role": "member"},
                            headers=product.zed.headers)
    assert added.status_code == 201, added.text
    settled(api.db.url)
    feed = api.client.get("/api/events", headers=product.headers(product.crm, "events:read"))
    assert feed.status_code == 200, feed.text
    assert [e["type"] for e in feed.json()["items"]] == ["invite.created"]
    without = api.client.get("/api/events", headers=product.headers(product.crm,
                                                                     "members:read"))
    api.error(without, 403, "insufficient_scope")
    assert without.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="events:read"')
    # A person's tokens, ours or an app's, never read the instance.
    api.error(api.client.get("/api/events", headers=product.ann.headers), 403,
              "service_credential_required")
    user_app = product.apps.client("Notes", scopes=("openid", "events:read"))
    grant = product.apps.grant(user_app, user=product.ann, scopes=("openid", "events:read"))
    api.error(api.client.get("/api/events", headers=product.apps.headers(grant)), 403,
              "service_credential_required")
    assert api.client.get("/api/events").status_code == 401


@pytest.mark.usefixtures("held_webhook_loop")
def test_a_service_client_manages_the_instances_webhook_endpoints(api: Api,
                                                                  product: Product) -> None:
    crm = product.headers(product.crm, "webhooks:write")
    made = api.client.post("/api/webhooks", json={"url": HOOK, "events": ["user.created"]},
                           headers=crm)
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_")
    assert made.headers["cache-control"] == "no-store"
    one = f"/api/webhooks/{endpoint['id']}"
    listed = api.client.get("/api/webhooks", headers=crm).json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    changed = api.client.patch(one, json={"events": None}, headers=crm)
    assert changed.status_code == 200 and changed.json()["events"] is None
    disabled = api.client.post(one + "/disable", headers=crm).json()
    assert disabled["disabled_reason"] == "Disabled by the service client Acme CRM."
    assert api.client.post(one + "/enable", headers=crm).json()["enabled"] is True
    queued = api.client.post(one + "/test", headers=crm)
    assert queued.status_code == 202, queued.text
    with product.apps.engine.connect() as conn:
        body = conn.execute(select(webhook_deliveries.c.payload).where(
            webhook_deliveries.c.message_id == queued.json()["message_id"])).scalar_one()
    assert body["actor"] == {"type": "client", "id": product.crm.id, "name": "Acme CRM"}
    # A workspace's endpoint is not the instance's: not found through the instance's routes.
    theirs = api.client.post(f"/api/workspaces/{product.acme.slug}/webhooks",
                             json={"url": HOOK}, headers=product.ann.headers).json()
    api.error(api.client.get(f"/api/webhooks/{theirs['id']}", headers=crm), 404,
              "webhook_not_found")
    assert [e["id"] for e in api.client.get("/api/webhooks", headers=crm).json()] == [
        endpoint["id"]]
    # Without the scope, or with a person's token: refused.
    api.error(api.client.get("/api/webhooks", headers=product.headers(product.crm,
                                                                      "events:read")),
              403, "insufficient_scope")
    api.error(api.client.get("/api/webhooks", headers=product.ann.headers), 403,
              "service_credential_required")
    assert api.client.delete(one, headers=crm).status_code == 204
    assert api.client.get("/api/webhooks", headers=crm).json() == []


def test_a_service_client_manages_a_workspaces_endpoints_as_an_admin(
        api: Api, product: Product) -> None:
    crm = product.headers(product.crm, "webhooks:write")
    made = api.client.post(f"/api/workspaces/{product.acme.slug}/webhooks",
                           json={"url": HOOK}, headers=crm)
    assert made.status_code == 201, made.text
    [line] = [e for e in api.client.get(f"/api/workspaces/{product.acme.slug}/audit",
                                        headers=product.ann.headers).json()["items"]
              if e["action"] == "webhook_created"]
    assert line["actor_client_id"] == product.crm.id
