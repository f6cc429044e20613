"""The account page in a real browser, by role and label: name, password, the address changed
through the emailed link, another session signed out, the page at 375 px, and the account
deleted after a confirmation (refused first while it is a workspace's only owner)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from tests.conftest import link_in
from tests.ui.conftest import Site, broken_words, fits, sign_in, sign_up

PASSWORD = "correct horse battery"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
NEW_PASSWORD = "a brand new passphrase"



def _section(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)



def _signed_out(other: Page) -> None:
    other.reload()
    expect(other.get_by_role("link", name="Sign in")).to_be_visible()


def test_the_account_page_from_name_to_deletion(page: Page, browser: Browser,
                                                site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    page.get_by_label("Workspace name").fill("Acme Inc")
    page.get_by_role("button", name="Create workspace").click()
    page.get_by_role("link", name="ann@example.com").click()  # the header's link
    expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()

    # Name: a refusal keeps the input, then a change.
    name = _section(page, "Name")
    name.get_by_label("Display name").fill("   ")
    name.get_by_role("button", name="Save name").click()
    expect(_section(page, "Name").get_by_text("The name must be 1 to 200")).to_be_visible()
    _section(page, "Name").get_by_label("Display name").fill("Ann Smith")
    _section(page, "Name").get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status")).to_contain_text("Your name is now Ann Smith.")
    expect(_section(page, "Name").get_by_label("Display name")).to_have_value("Ann Smith")

    # Another browser signed in; signed out from here.
    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740},
                                user_agent=IPHONE)
    other = sign_in(phone.new_page(), "ann@example.com", PASSWORD)
    page.reload()
    sessions = _section(page, "Sessions")
    expect(sessions.get_by_role("row")).to_have_count(3)  # the header row and two sessions
    expect(sessions.get_by_text("this browser")).to_have_count(1)
    # Told apart by device and address (as the limits see it), signed in and last used.
    this = sessions.get_by_role("row").filter(has_text="this browser")
    expect(this).to_contain_text("Chrome")
    expect(this).to_contain_text("on Linux")
    iphone = sessions.get_by_role("row").filter(has_text="Mobile Safari 17 on iPhone (iOS 17)")
    expect(iphone).to_contain_text("127.0.0.1")
    expect(iphone.locator("td[data-label='Signed in'] time")).to_have_count(1)
    expect(iphone.locator("td[data-label='Last used'] time")).to_have_count(1)
    site.screenshot(page, "account-two-sessions")
    assert broken_words(page, "table") == []  # "127.0.0./1", "Sign/out" neither
    sessions.get_by_role("button", name="Sign out the browser session on Mobile Safari 17 on "
                                        "iPhone (iOS 17)").click()
    expect(page.get_by_role("status")).to_contain_text("The browser session was signed out.")
    expect(_section(page, "Sessions").get_by_role("row")).to_have_count(2)
    _signed_out(other)

    # Password: the wrong current one is refused; then changed, the other browser signed out.
    other = sign_in(phone.new_page(), "ann@example.com", PASSWORD)
    password = _section(page, "Password")
    password.get_by_label("Current password").fill("not my password")
    password.get_by_label("New password").fill(NEW_PASSWORD)
    password.get_by_role("button", name="Change password").click()
    expect(_section(page, "Password").get_by_text("The current password is wrong.")
           ).to_be_visible()
    site.screenshot(page, "account-wrong-password")
    password = _section(page, "Password")
    password.get_by_label("Current password").fill(PASSWORD)
    password.get_by_label("New password").fill(NEW_PASSWORD)
    password.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Your password was changed. 1 other session was signed out.")
    _signed_out(other)
    site.mail.newest("ann@example.com", "Your Workspaces password was changed")

    # Email address: a link to the new address, opened in the phone (signed in there first).
    expect(_section(page, "Email address").get_by_text("not verified")).to_be_visible()
    address = _section(page, "Email address")
    address.get_by_label("New email address").fill("ann.smith@example.com")
    address.get_by_label("Your password").fill(NEW_PASSWORD)
    address.get_by_role("button", name="Send a confirmation link").click()
    expect(page.get_by_role("status")).to_contain_text(
        "A link to confirm the change is on its way to ann.smith@example.com.")
    confirm = site.mail.newest("ann.smith@example.com", "Confirm your new Workspaces address")
    token = link_in(confirm, "email")
    other.goto(f"/email/{token}")  # the link alone does not do it: the account signs in
    expect(other.get_by_role("heading", name="Confirm your new address")).to_be_visible()
    expect(other.get_by_role("button", name="Use ann.smith@example.com")).to_have_count(0)
    other.get_by_role("link", name="Sign in as ann@example.com").click()
    other.get_by_label("Email").fill("ann@example.com")
    other.get_by_label("Password").fill(NEW_PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("heading", name="Confirm your new address")).to_be_visible()
    site.screenshot(other, "account-email-link-phone")
    other.get_by_role("button", name="Use ann.smith@example.com").click()
    expect(other.get_by_role("status")).to_contain_text(
        "Your address is now ann.smith@example.com")
    phone.close()
    site.mail.newest("ann@example.com", "The address of your Workspaces account was changed")
    page.reload()
    expect(page.get_by_role("link", name="ann.smith@example.com")).to_be_visible()
    expect(_section(page, "Email address").get_by_text("verified", exact=True)).to_be_visible()
    activity = _section(page, "Recent security activity")
    expect(activity).to_contain_text(
        "Email address changed: ann@example.com → ann.smith@example.com")
    expect(activity).to_contain_text("Password changed")
    expect(activity).to_contain_text("A session was signed out")
    site.screenshot(page, "account-desktop")

    # At 375 px nothing overflows (an API token listed too, with its Sign out button).
    token = httpx.post(f"{site.base}/api/auth/login", json={
        "email": "ann.smith@example.com", "password": NEW_PASSWORD}).json()["token"]
    page.set_viewport_size({"width": 375, "height": 740})
    page.reload()
    expect(_section(page, "Sessions").get_by_text("API token", exact=True)).to_be_visible()
    assert fits(page)
    site.screenshot(page, "account-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Delete: asked first; refused while the only owner of Acme; then done.
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("heading", name="Delete your account?")).to_be_visible()
    site.screenshot(page, "account-delete-confirm")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("status")).to_contain_text("You are the only owner of acme-inc")
    site.screenshot(page, "account-delete-refused")
    assert httpx.delete(f"{site.base}/api/workspaces/acme-inc",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 204
    page.get_by_role("button", name="Delete account").click()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("status")).to_contain_text(
        "The account ann.smith@example.com was deleted.")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert site.db.sql("SELECT count(*) FROM users") == [(0,)]
