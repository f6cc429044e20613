"""Connected apps on the account page, at 375 px without JavaScript: an app with a long name
that the user allowed, a trusted (first-party) one that skipped consent but holds tokens, what
each may do in words, and Revoke (a CSRF-protected form) ending an app's access."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.factories import Factory
from tests.oauth.test_clients import WEB, add_grant, run
from tests.ui.conftest import LONG_NAME, Site, broken_words, fits, sign_in
from workspaces.oauth import clients, consents
from workspaces.oauth.scopes import DESCRIPTIONS

APP = f"{LONG_NAME} Analytics"


def _connect(url: str, user_id: uuid.UUID) -> tuple[str, str]:
    """An app the user allowed (a consent and a grant), and a trusted one (a grant only)."""
    async def work(conn: AsyncConnection) -> tuple[str, str]:
        allowed = (await clients.create_client(
            conn, name=APP, redirect_uris=[WEB],
            scopes=["openid", "email", "workspace", "offline_access"])).client.id
        trusted = (await clients.create_client(
            conn, name="Acme Mail", redirect_uris=[WEB], trusted=True)).client.id
        await consents.record_consent(conn, user_id=user_id, client_id=allowed,
                                      scopes=["openid", "email", "workspace",
                                              "offline_access"])
        await add_grant(conn, allowed, user_id, scopes=["openid", "email", "workspace"])
        await add_grant(conn, trusted, user_id, scopes=["openid", "profile"])
        return allowed, trusted

    return run(url, work)


def test_a_user_sees_their_connected_apps_and_revokes_one(phone: Page, site: Site) -> None:
    make = Factory(site.db.url)
    ann = make.user("ann@example.com", "Ann")
    make.close()
    allowed, trusted = _connect(site.db.url, ann.id)
    page = sign_in(phone, "ann@example.com")
    page.goto("/account")
    apps = page.get_by_role("region", name="Connected apps")
    expect(apps.get_by_role("row")).to_have_count(3)  # the header row and two apps
    mine = apps.get_by_role("row").filter(has_text=APP)
    for scope in ("openid", "email", "workspace", "offline_access"):
        expect(mine).to_contain_text(DESCRIPTIONS[scope])
    first_party = apps.get_by_role("row").filter(has_text="Acme Mail")
    expect(first_party).to_contain_text(DESCRIPTIONS["profile"])
    expect(first_party.locator("td[data-label='Last used'] time")).to_have_count(1)
    site.screenshot(page, "account-connected-apps-375")
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")
    assert broken_words(page, "table.apps") == []  # "Revoke", "Allowed" stay whole

    # A form that did not come from the page is refused, and changes nothing.
    forged = page.request.post(f"/account/apps/{allowed}/revoke",
                               form={"csrf_token": "forged"}, max_redirects=0)
    assert forged.status == 403
    expect(apps.get_by_role("row")).to_have_count(3)

    apps.get_by_role("button", name=f"Revoke the access of {APP}").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"{APP} can no longer use your account")
    apps = page.get_by_role("region", name="Connected apps")
    expect(apps.get_by_role("row")).to_have_count(2)
    expect(page.get_by_role("region", name="Recent security activity")).to_contain_text(
        f"A connected app's access was revoked: {APP}")
    assert fits(page)
    assert site.db.sql("SELECT count(*) FROM oauth_consents") == [(0,)]
    assert site.db.sql(f"SELECT count(*) FROM oauth_grants WHERE client_id = '{allowed}' "
                       "AND revoked_at IS NULL") == [(0,)]

    # The trusted app had no consent to forget; its grant ends all the same.
    apps.get_by_role("button", name="Revoke the access of Acme Mail").click()
    expect(page.get_by_role("status")).to_contain_text("Acme Mail can no longer use")
    expect(page.get_by_text("No app has access to your account.")).to_be_visible()
    assert site.db.sql(f"SELECT count(*) FROM oauth_grants WHERE client_id = '{trusted}' "
                       "AND revoked_at IS NULL") == [(0,)]
