"""Verified addresses in the browser: sign up, follow the emailed link, then accept an
invitation from "Invitations for you" on the home page (at 375 px, and without JavaScript)."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.conftest import link_in
from tests.ui.conftest import Site, sign_up


def test_sign_up_verify_and_accept_from_invitations_for_you(
        page: Page, browser: Browser, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    page.get_by_label("Workspace name").fill("Acme")
    page.get_by_role("button", name="Create workspace").click()
    page.get_by_label("Email").fill("bob@example.com")
    page.get_by_role("button", name="Send invite").click()
    expect(page.get_by_role("status")).to_contain_text("Invite sent to bob@example.com")

    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740},
                                java_script_enabled=False)
    bob = phone.new_page()
    sign_up(bob, "Bob", "bob@example.com")
    notice = bob.get_by_role("region", name="Confirm your address")
    expect(notice).to_contain_text("We mailed a link to bob@example.com")
    expect(bob.get_by_role("heading", name="Invitations for you")).to_have_count(0)
    site.screenshot(bob, "verify-unverified-home-phone")

    token = link_in(site.mail.confirmation_for("bob@example.com"), "verify")
    bob.goto(f"/verify/{token}")
    expect(bob.get_by_role("heading", name="Confirm your address")).to_be_visible()
    site.screenshot(bob, "verify-confirm-page-phone")
    bob.get_by_role("button", name="Confirm my address").click()
    expect(bob.get_by_role("status")).to_contain_text("bob@example.com is verified")
    expect(notice).to_have_count(0)
    invitations = bob.get_by_role("region", name="Invitations for you")
    expect(invitations).to_contain_text("Acme as member, from “Ann” (ann@example.com)")
    assert bob.evaluate("document.documentElement.scrollWidth <= "
                        "document.documentElement.clientWidth")
    site.screenshot(bob, "verify-invitations-for-you-phone")
    bob.get_by_role("button", name="Accept the invitation to Acme").click()
    expect(bob.get_by_role("status")).to_contain_text("You joined Acme as member.")
    expect(bob.get_by_role("heading", name="Acme")).to_be_visible()
    bob.goto(f"/verify/{token}")  # used: it says so, and how to get another
    expect(bob.get_by_role("heading", name="This link does not work")).to_be_visible()
    phone.close()


def test_asking_for_the_link_again_from_the_home_page(page: Page, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    first = link_in(site.mail.confirmation_for("ann@example.com"), "verify")
    page.get_by_role("button", name="Send the link again").click()
    expect(page.get_by_role("status")).to_contain_text("A new confirmation link is on its way")
    newest = link_in(site.mail.confirmation_for("ann@example.com", count=2), "verify")
    assert newest != first
    page.goto(f"/verify/{first}")  # the older link ended
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    page.goto(f"/verify/{newest}")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_role("status")).to_contain_text("ann@example.com is verified")
    expect(page.get_by_role("button", name="Send the link again")).to_have_count(0)
