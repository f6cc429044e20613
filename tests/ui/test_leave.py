"""Leaving a workspace in the browser: asked first (no JavaScript needed), and the sole owner
is told to hand over instead."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.conftest import link_in
from tests.ui.conftest import Site, sign_up


def test_a_member_leaves_after_confirming_and_the_sole_owner_cannot(
        page: Page, browser: Browser, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    page.get_by_label("Workspace name").fill("Acme")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_text("You are the only owner: make someone else an owner")).to_be_visible()
    expect(page.get_by_role("button", name="Leave Acme")).to_have_count(0)
    page.get_by_label("Email").fill("gus@example.com")
    page.get_by_role("button", name="Send invite").click()
    token = link_in(site.mail.wait_for(1)[0])

    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740},
                                java_script_enabled=False)
    gus = phone.new_page()
    gus.goto(f"/invites/{token}")
    gus.get_by_label("Name").fill("Gus")
    gus.get_by_label("Password").fill("gus password 1")
    gus.get_by_role("button", name="Create account and join").click()
    gus.get_by_role("button", name="Leave Acme").click()
    expect(gus.get_by_role("heading", name="Leave Acme?")).to_be_visible()
    site.screenshot(gus, "leave-confirm-phone")
    gus.get_by_role("link", name="Cancel").click()  # nothing happens
    expect(gus.get_by_role("heading", level=1)).to_contain_text("Acme")
    gus.get_by_role("button", name="Leave Acme").click()
    gus.get_by_role("button", name="Leave", exact=True).click()
    expect(gus.get_by_role("status")).to_contain_text("You left the workspace.")
    expect(gus.get_by_role("link", name="Acme")).to_have_count(0)
    assert gus.goto("/w/acme").status == 404  # type: ignore[union-attr]
    phone.close()

    page.reload()
    members = page.get_by_role("region", name="Members")
    expect(members.get_by_role("cell", name="gus@example.com")).to_have_count(0)
