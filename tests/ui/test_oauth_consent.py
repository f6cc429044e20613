"""Signing in to an app with Workspaces on a phone without JavaScript: our sign-in page, then
consent and the workspace picker on one page (long names wrap), then back to the app with a
code (the page's CSP lets its form end at the app)."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import Browser, Route, expect
from sqlalchemy import insert

from tests.factories import PASSWORD, Factory
from tests.ui.conftest import LONG_EMAIL, LONG_NAME, Site, fits
from workspaces import clock
from workspaces.models import oauth_clients
from workspaces.oauth.scopes import DESCRIPTIONS

CALLBACK = "https://app.example.com/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_consent_and_picker_at_375_px_without_javascript(browser: Browser, site: Site) -> None:
    make = Factory(site.db.url)
    user = make.user(LONG_EMAIL, "Max")
    owner = make.user()
    long_one = make.workspace(owner, LONG_NAME)
    make.member(long_one, user, "admin")
    make.member(make.workspace(owner, "Acme"), user, "member")
    client_id, now = f"wsc_{uuid.uuid4().hex[:16]}", clock.now()
    with make.engine.begin() as conn:
        conn.execute(insert(oauth_clients).values(
            id=client_id, name="Acme Notes", secret_hash=None, trusted=False,
            redirect_uris=[CALLBACK], post_logout_redirect_uris=[],
            scopes=["openid", "email", "workspace"], workspace_restricted=False,
            created_at=now, updated_at=now))
    make.close()

    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740},
                                java_script_enabled=False)
    arrived: list[str] = []

    def the_app(route: Route) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>Signed in</p>")

    phone.route(f"{CALLBACK}**", the_app)
    page = phone.new_page()
    page.goto("/oauth/authorize?" + urlencode({
        "client_id": client_id, "response_type": "code", "scope": "openid email workspace",
        "redirect_uri": CALLBACK, "state": "st-1", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256", "login_hint": LONG_EMAIL}))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(LONG_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Acme Notes wants to use your Workspaces account")
    for scope in ("openid", "email"):
        expect(page.get_by_text(DESCRIPTIONS[scope])).to_be_visible()
    choices = page.get_by_role("radio")
    expect(choices).to_have_count(2)
    site.screenshot(page, "oauth-consent-picker-phone")
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")
    page.get_by_role("radio", name=f"{LONG_NAME} admin").check()
    page.get_by_role("button", name="Allow").click()

    page.wait_for_url(f"{CALLBACK}?**")
    (url,) = arrived
    back = parse_qs(urlsplit(url).query)
    assert back["state"] == ["st-1"] and back["iss"] == [site.base] and back["code"]
    ((workspace_slug,),) = site.db.sql(
        "SELECT w.slug FROM oauth_codes c JOIN workspaces w ON w.id = c.workspace_id")
    assert workspace_slug == long_one.slug

    arrived.clear()  # consented: the next sign-in asks only which workspace
    page.goto("/oauth/authorize?" + urlencode({
        "client_id": client_id, "response_type": "code", "scope": "openid workspace",
        "redirect_uri": CALLBACK, "state": "st-2", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256"}))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Choose a workspace for Acme Notes")
    assert fits(page)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{CALLBACK}?**")
    assert parse_qs(urlsplit(arrived[0]).query)["error"] == ["access_denied"]
    phone.close()
