"""The Webhooks tab through its forms, on both databases: owners and admins only, the secret
shown once (and sealed in the flash cookie on its way there), every button, refusals shown on
the page, and the audit log's words."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.api.conftest import Api
from tests.factories import PASSWORD, Factory, User, Workspace
from workspaces.security import unseal
from workspaces.settings import Settings

# Nothing is sent here: what was saved and queued is read as it was left.
pytestmark = pytest.mark.usefixtures("held_webhook_loop")

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allowed_networks": "127.0.0.0/8",
                                       "workspace_webhook_allowed_networks": "127.0.0.0/8"})


@pytest.fixture
def make(api: Api) -> Iterator[Factory]:
    factory = Factory(api.db.url)
    yield factory
    factory.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def _sign_in(api: Api, user: User) -> None:
    api.client.cookies.clear()
    form = api.client.get("/signin").text
    signed = api.client.post("/signin", data={"csrf_token": _csrf(form), "email": user.email,
                                              "password": PASSWORD})
    assert signed.status_code == 200, signed.text


def _post(api: Api, page: str, action: str, **data: str | list[str]) -> str:
    """Submit a form of `page` to `action` (following the redirect); the page answered."""
    response = api.client.post(action, data={"csrf_token": _csrf(api.client.get(page).text),
                                             **data})
    assert response.status_code < 500, response.text
    return str(response.text)


def _secret_shown(html: str) -> str | None:
    found = re.search(r'id="signing-secret" type="text" readonly value="([^"]+)"', html)
    return found.group(1) if found else None


@pytest.fixture
def admin_and_space(api: Api, make: Factory) -> tuple[User, Workspace]:
    owner = make.user("owner@example.com")
    space = make.workspace(owner, "Acme")
    admin = make.member(space, "admin@example.com", "admin")
    _sign_in(api, admin)
    return admin, space


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
        api: Api, settings: Settings, admin_and_space: tuple[User, Workspace]) -> None:
    _, space = admin_and_space
    tab = f"/w/{space.slug}/webhooks"
    page = api.client.get(tab)
    assert page.status_code == 200 and "No endpoints yet." in page.text
    assert f'href="{tab}" aria-current="page">Webhooks' in page.text
    assert 'value="user.created"' not in page.text  # never reaches a workspace's endpoint
    assert 'value="workspace.deleted"' not in page.text  # nor does its own end

    refused = api.client.post(tab, data={"csrf_token": _csrf(page.text),
                                         "url": "https://10.0.0.1/hook", "description": "CRM",
                                         "events": ["member.added"]})
    assert refused.status_code == 422
    assert "not a public address" in refused.text
    assert 'value="CRM"' in refused.text and 'value="member.added" checked' in refused.text

    sent = api.client.post(tab, data={"csrf_token": _csrf(page.text), "url": HOOK,
                                      "description": "CRM",
                                      "events": ["member.added", "member.removed"]},
                           follow_redirects=False)
    assert sent.status_code == 303
    endpoint_page = sent.headers["location"]
    flash = next(v for k, v in api.client.cookies.items() if "flash" in k)
    carried = URLSafeTimedSerializer(settings.secret_key or "",
                                     salt="workspaces.flash").loads(flash)
    assert carried["secret"] and not carried["secret"].startswith("whsec_")  # sealed in it

    shown = api.client.get(endpoint_page)
    assert shown.headers["cache-control"] == "no-store"
    secret = _secret_shown(shown.text)
    assert secret and secret.startswith("whsec_")
    ((sealed,),) = api.db.sql("SELECT sealed_secret FROM webhook_endpoints")
    assert unseal(settings.secret_key or "", str(sealed)) == secret
    assert "member.added, member.removed" in shown.text
    again = api.client.get(endpoint_page)
    assert _secret_shown(again.text) is None and secret not in again.text  # once
    listed = api.client.get(tab).text
    assert HOOK in listed and secret not in listed

    rotated = _post(api, endpoint_page, f"{endpoint_page}/rotate")
    assert "Rotate the signing secret?" in rotated and "24 hours" in rotated
    rotated = _post(api, endpoint_page, f"{endpoint_page}/rotate", confirmed="yes")
    new = _secret_shown(rotated)
    assert new and new != secret and "Previous secret" in rotated

    audit = api.client.get(f"/w/{space.slug}/audit").text
    assert "Webhook endpoint added" in audit and "http://127.0.0.1:9, member.added" in audit
    assert "Webhook signing secret rotated" in audit
    assert secret not in audit and new not in audit


def test_every_button_of_an_endpoint(api: Api, make: Factory,
                                     admin_and_space: tuple[User, Workspace]) -> None:
    _, space = admin_and_space
    tab = f"/w/{space.slug}/webhooks"
    page = api.client.get(tab).text
    api.client.post(tab, data={"csrf_token": _csrf(page), "url": HOOK})
    ((endpoint_id,),) = api.db.sql("SELECT id FROM webhook_endpoints")
    one = api.client.get(tab).text
    base = re.search(rf'href="({tab}/[0-9a-f-]+)"', one)
    assert base
    endpoint = base.group(1)

    tested = _post(api, endpoint, f"{endpoint}/test")
    assert "Test message queued" in tested and "webhook.test" in tested
    assert "Waiting" in tested and "None yet" in tested

    edited = _post(api, endpoint, endpoint, url="http://127.0.0.2:9/x", description="Chat",
                   events=["invite.created"])
    assert "Saved." in edited and "http://127.0.0.2:9/x" in edited
    same = _post(api, endpoint, endpoint, url="http://127.0.0.2:9/x", description="Chat",
                 events=["invite.created"])
    assert "Nothing changed." in same
    bad = _post(api, endpoint, endpoint, url="ftp://x", description="Chat")
    assert "This webhook URL cannot be used" in bad and 'value="ftp://x"' in bad

    api.db.sql("UPDATE webhook_deliveries SET status = 'failed', attempts = 1")
    retried = _post(api, endpoint, re.findall(r'action="([^"]+/retry)"',
                                              api.client.get(endpoint).text)[0])
    assert "Queued to be sent again now." in retried

    replayed = _post(api, endpoint, f"{endpoint}/replay", since="2020-01-01T00:00")
    assert "No events since then to send again." in replayed
    unreadable = _post(api, endpoint, f"{endpoint}/replay", since="yesterday")
    assert "Give the date and time (UTC)" in unreadable

    disabled = _post(api, endpoint, f"{endpoint}/disable")
    assert "Disabled: nothing is delivered" in disabled and "Disabled by admin@example.com" in \
        disabled
    refused = _post(api, endpoint, f"{endpoint}/replay", since="2020-01-01T00:00")
    assert "enable it first" in refused
    enabled = _post(api, endpoint, f"{endpoint}/enable")
    assert "Enabled: events are delivered to it again." in enabled

    asked = _post(api, endpoint, f"{endpoint}/delete")
    assert "Delete this webhook endpoint?" in asked
    assert api.db.sql("SELECT count(*) FROM webhook_endpoints") == [(1,)]
    gone = _post(api, endpoint, f"{endpoint}/delete", confirmed="yes")
    assert "Endpoint deleted." in gone and "No endpoints yet." in gone
    assert api.db.sql("SELECT count(*) FROM webhook_endpoints") == [(0,)]
    assert endpoint_id


def test_members_see_no_tab_and_are_refused_its_pages(api: Api, make: Factory) -> None:
    owner = make.user("owner@example.com")
    space = make.workspace(owner, "Acme")
    member = make.member(space, "member@example.com", "member")
    endpoint = make.endpoint(Workspace(space.id, space.slug), url=HOOK)
    _sign_in(api, member)
    tab = f"/w/{space.slug}/webhooks"
    assert f'href="{tab}"' not in api.client.get(f"/w/{space.slug}").text
    for path in (tab, f"{tab}/{endpoint}"):
        response = api.client.get(path)
        assert response.status_code == 403 and "Only admins and above" in response.text
    csrf = _csrf(api.client.get(f"/w/{space.slug}").text)
    for action in ("", f"/{endpoint}", f"/{endpoint}/test", f"/{endpoint}/disable",
                   f"/{endpoint}/delete"):
        response = api.client.post(f"{tab}{action}", data={"csrf_token": csrf, "url": HOOK,
                                                           "confirmed": "yes"})
        assert response.status_code in (403, 200), response.text
        assert "Only admins and above" in response.text, action
    assert api.db.sql("SELECT count(*), min(description) FROM webhook_endpoints") == [(1, "")]
    forged = api.client.post(tab, data={"csrf_token": "forged", "url": HOOK})
    assert forged.status_code == 403


def test_the_replay_form_keeps_an_offset_typed_into_it() -> None:
    from datetime import UTC, datetime

    from workspaces.webhooks.pages import _since

    assert _since("2026-12-01T09:30") == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert _since("2026-12-01T09:30+01:00") == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
