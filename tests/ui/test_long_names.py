"""A 64-character workspace name without a space and 60-character addresses, on every page a
member sees: no page scrolls sideways at 375 px, and at 1280 px the tables keep short words
("member", "pending") whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.conftest import link_in
from tests.factories import Factory, Workspace
from tests.ui.conftest import (
    LONG_EMAIL,
    LONG_EMAIL_2,
    LONG_NAME,
    Site,
    broken_words,
    fits,
    sign_up,
)
from tests.ui.test_members_tab import _invite, _workspace

PHONE: ViewportSize = {"width": 375, "height": 740}
SLUG = LONG_NAME.lower()[:60]


@pytest.fixture
def make(site: Site) -> Iterator[Factory]:
    factory = Factory(site.db.url)
    yield factory
    factory.close()


def _fits_phone(page: Page, shot: str, site: Site) -> None:
    site.screenshot(page, f"long-{shot}")
    assert fits(page), (shot, page.evaluate("document.documentElement.scrollWidth"))


def test_long_names_and_addresses_wrap_on_every_page(page: Page, browser: Browser, site: Site,
                                                     make: Factory) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_up(page, "Ann", LONG_EMAIL)
    _workspace(page, LONG_NAME)
    assert page.url.endswith(f"/w/{SLUG}")
    ((workspace_id,),) = site.db.sql(f"SELECT id FROM workspaces WHERE slug = '{SLUG}'")
    workspace = Workspace(uuid.UUID(str(workspace_id)), SLUG)
    make.member(workspace, make.user(LONG_EMAIL_2, "Bob"), "member")
    invitee = "zacharyalexanderfeatherstonehaugh1990@anotherprovider.org"
    _invite(page, invitee)
    _invite(page, "carol@example.com")
    page.reload()
    for table in ("Members", "Invites"):
        assert broken_words(page, f"section:has(h2:text-is('{table}')) table") == [], table
    site.screenshot(page, "long-members-1280")
    page.goto(f"/w/{SLUG}/audit")
    assert broken_words(page, "table") == []
    page.goto("/account")
    assert broken_words(page, "table") == []
    site.screenshot(page, "long-account-1280")

    page.set_viewport_size(PHONE)
    for path, shot in (("/", "home"), (f"/w/{SLUG}", "members"),
                       (f"/w/{SLUG}/settings", "general"), (f"/w/{SLUG}/audit", "audit"),
                       ("/account", "account"), (f"/w/{SLUG}/settings/delete", "delete")):
        page.goto(path)
        _fits_phone(page, shot, site)
    page.goto(f"/w/{SLUG}")
    page.get_by_role("button", name="Revoke invite to carol@example.com").click()
    expect(page.get_by_role("heading", name="Revoke the invite to carol@example.com?")
           ).to_be_visible()
    _fits_phone(page, "confirm-revoke", site)
    page.goto(f"/w/{SLUG}")
    page.get_by_role("button", name=f"Remove {LONG_EMAIL_2}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(LONG_EMAIL_2)
    _fits_phone(page, "confirm-remove", site)
    page.goto(f"/w/{SLUG}/settings")
    transfer = page.get_by_role("region", name="Transfer ownership")
    transfer.get_by_label("New owner").select_option(label=f"Bob ({LONG_EMAIL_2}, member)")
    transfer.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="Transfer ownership")).to_be_visible()
    _fits_phone(page, "confirm-transfer", site)

    # The invitee, on a phone: the invite page, then the workspace and leaving it.
    token = link_in(next(m for m in site.mail.to(invitee)))
    phone = browser.new_context(base_url=site.base, viewport=PHONE)
    zach = phone.new_page()
    zach.goto(f"/invites/{token}")
    expect(zach.get_by_role("heading", name=f"Join {LONG_NAME}")).to_be_visible()
    _fits_phone(zach, "invite", site)
    zach.get_by_label("Name").fill("Zach")
    zach.get_by_label("Password").fill("zach's long password")
    zach.get_by_role("button", name="Create account and join").click()
    expect(zach.get_by_role("status")).to_contain_text(f"you joined {LONG_NAME}")
    _fits_phone(zach, "members-as-member", site)
    zach.get_by_role("button", name=f"Leave {LONG_NAME}").click()
    expect(zach.get_by_role("heading", name=f"Leave {LONG_NAME}?")).to_be_visible()
    _fits_phone(zach, "confirm-leave", site)
    zach.goto("/")
    _fits_phone(zach, "home-as-member", site)
    phone.close()

