"""Forgot password in the browser: the link from the email, a new password, and the session
that was open elsewhere signed out."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.ui.conftest import Site, sign_up


def test_forgot_password_to_a_new_password_signs_the_old_session_out(
        page: Page, browser: Browser, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")  # this session stays open in its own browser
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740})
    other = phone.new_page()
    other.goto("/signin")
    other.get_by_role("link", name="Forgot password?").click()
    other.get_by_label("Email").fill("ann@example.com")
    other.get_by_role("button", name="Email me a link").click()
    expect(other.get_by_role("heading", name="Check your email")).to_be_visible()
    site.screenshot(other, "password-reset-asked-phone")

    message = next(m for m in site.mail.wait_for(1) if m["Subject"].startswith("Reset"))
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/(reset/\S+)", body.get_content())
    assert found, body.get_content()
    other.goto(f"/{found.group(1)}")
    expect(other.get_by_role("heading", name="Choose a new password")).to_be_visible()
    other.get_by_label("New password").fill("short")
    other.get_by_role("button", name="Set the new password").click()
    expect(other.get_by_text("Choose a password of 8 to 1024 characters.")).to_be_visible()
    other.get_by_label("New password").fill("a brand new passphrase")
    site.screenshot(other, "password-reset-new-password-phone")
    other.get_by_role("button", name="Set the new password").click()
    expect(other.get_by_role("status")).to_contain_text("Your password was changed")
    expect(other.get_by_label("Email")).to_have_value("ann@example.com")  # filled in
    other.reload()  # once: the next visit starts blank
    expect(other.get_by_label("Email")).to_have_value("")
    other.get_by_label("Email").fill("ann@example.com")
    other.get_by_label("Password").fill("a brand new passphrase")
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("button", name="Sign out")).to_be_visible()
    assert other.evaluate("document.documentElement.scrollWidth <= "
                          "document.documentElement.clientWidth")
    phone.close()

    page.reload()  # the first browser's session was signed out by the reset
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
