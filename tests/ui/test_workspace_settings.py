"""Workspace settings in a real browser, by role and label: the tabs, rename, ownership
transfer, the Audit log tab and delete; at 375 px and without JavaScript."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import delete, insert

from tests.factories import Factory, User, Workspace
from tests.ui.conftest import Site, sign_up
from tests.ui.test_members_tab import _workspace
from workspaces.models import audit_events, users

SLUG = "acme-inc"


@pytest.fixture
def make(site: Site) -> Iterator[Factory]:
    factory = Factory(site.db.url)
    yield factory
    factory.close()


def _acme(site: Site) -> Workspace:
    ((workspace_id,),) = site.db.sql(f"SELECT id FROM workspaces WHERE slug = '{SLUG}'")
    return Workspace(uuid.UUID(str(workspace_id)), SLUG)


def _join(site: Site, make: Factory, email: str, name: str, role: str = "member") -> User:
    """An account (password as sign_up's) joins the workspace SLUG with `role`."""
    return make.member(_acme(site), make.user(email, name), role)


def _events(make: Factory, workspace: Workspace, actor: User | None, action: str, count: int,
            start: datetime) -> None:
    """`count` audit entries of `action`, a second apart from `start` on."""
    with make.engine.begin() as conn:
        conn.execute(insert(audit_events), [
            {"id": uuid.uuid4(), "workspace_id": workspace.id,
             "actor_user_id": actor.id if actor else None, "action": action,
             "target_type": "member", "target_id": "x", "target_email": "ex@example.com",
             "detail": {"role": "member"}, "created_at": start + timedelta(seconds=n)}
            for n in range(count)])


def _tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Workspace settings").get_by_role(
        "link", name=name).click()
    expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute(
        "aria-current", "page")


def _owner(page: Page) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page, "Acme Inc")


def test_rename_from_the_general_tab_keeps_the_slug(page: Page, site: Site) -> None:
    _owner(page)
    _tab(page, "General")
    expect(page).to_have_url(f"{site.base}/w/{SLUG}/settings")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme Inc")
    expect(page.get_by_label("Slug")).to_have_value(SLUG)
    expect(page.get_by_label("Slug")).to_have_attribute("readonly", "")
    expect(page.get_by_text("stays the same when the workspace is renamed")).to_be_visible()

    page.get_by_label("Workspace name").fill("   ")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_label("Workspace name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#name-error")).to_be_visible()
    site.screenshot(page, "settings-rename-refused")

    page.get_by_label("Workspace name").fill("Acme Holdings")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_contain_text("Renamed to Acme Holdings")
    expect(page).to_have_url(f"{site.base}/w/{SLUG}/settings")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme Holdings")
    expect(page.get_by_label("Slug")).to_have_value(SLUG)
    site.screenshot(page, "settings-general")
    _tab(page, "Members")  # the old address still leads to the workspace
    expect(page).to_have_url(f"{site.base}/w/{SLUG}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme Holdings")


def test_transfer_ownership_asks_first_then_steps_down(page: Page, site: Site,
                                                       make: Factory) -> None:
    _owner(page)
    _join(site, make, "bob@example.com", "Bob")
    _tab(page, "General")
    transfer = page.get_by_role("region", name="Transfer ownership")
    transfer.get_by_label("New owner").select_option(label="Bob (bob@example.com, member)")
    transfer.get_by_label("Step down to admin once they own it").check()
    transfer.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Make bob@example.com an owner of Acme Inc?")) \
        .to_be_visible()
    expect(page.get_by_text("You step down to admin")).to_be_visible()
    site.screenshot(page, "settings-transfer-confirm")
    page.get_by_role("link", name="Cancel").click()  # nothing changes
    expect(page.get_by_role("region", name="Transfer ownership")).to_be_visible()
    _tab(page, "Members")
    expect(page.get_by_role("row").filter(has_text="bob@example.com")).to_contain_text("member")

    _tab(page, "General")
    transfer.get_by_label("New owner").select_option(label="Bob (bob@example.com, member)")
    transfer.get_by_label("Step down to admin once they own it").check()
    transfer.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Transfer ownership").click()
    expect(page.get_by_role("status")).to_contain_text(
        "bob@example.com is now an owner of Acme Inc; you are now an admin")
    expect(page.get_by_role("heading", level=1)).to_contain_text("you are admin")
    members = page.get_by_role("region", name="Members")
    expect(members.get_by_role("row").filter(has_text="bob@example.com")).to_contain_text("owner")
    expect(members.get_by_role("row").filter(has_text="ann@example.com")).to_contain_text("admin")
    _tab(page, "General")  # an admin may rename, not hand over or delete
    expect(page.get_by_role("button", name="Rename")).to_be_visible()
    expect(page.get_by_role("region", name="Transfer ownership")).to_have_count(0)
    expect(page.get_by_role("link", name="Delete workspace")).to_have_count(0)
    site.screenshot(page, "settings-general-admin")


def test_the_audit_log_tab_filters_by_action_and_pages_back(page: Page, site: Site,
                                                            make: Factory) -> None:
    _owner(page)
    gone = _join(site, make, "gone@example.com", "Gone", "admin")
    _join(site, make, "carl@example.com", "Carl")
    page.reload()
    page.get_by_label("Role for carl@example.com").select_option("admin")
    page.get_by_role("button", name="Change role of carl@example.com").click()
    expect(page.get_by_role("status")).to_contain_text("carl@example.com is now admin")
    _tab(page, "General")
    page.get_by_label("Workspace name").fill("Acme Holdings")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_contain_text("Renamed")
    # Someone whose account is gone since removed a member.
    _events(make, _acme(site), gone, "removed", 1, datetime(2020, 1, 1, tzinfo=UTC))
    with make.engine.begin() as conn:
        conn.execute(delete(users).where(users.c.id == gone.id))

    _tab(page, "Audit log")
    log = page.get_by_role("region", name="Audit log")
    rows = log.get_by_role("row")
    expect(rows).to_have_count(5)  # the header and four entries, newest first
    expect(rows.nth(1)).to_contain_text("Workspace renamed")
    expect(rows.nth(1)).to_contain_text("“Acme Inc” → “Acme Holdings”")
    expect(rows.nth(1)).to_contain_text("ann@example.com")
    expect(rows.nth(2)).to_contain_text("Role changed")
    expect(rows.nth(2)).to_contain_text("carl@example.com")
    expect(rows.nth(3)).to_contain_text("Workspace created")
    expect(rows.nth(3)).to_contain_text("ann@example.com")
    expect(rows.nth(4)).to_contain_text("someone whose account was deleted")
    site.screenshot(page, "settings-audit-log")

    log.get_by_label("Action").select_option(label="Role changed")
    log.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{site.base}/w/{SLUG}/audit?action=role_changed")
    expect(log.get_by_label("Action")).to_have_value("role_changed")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("member → admin")
    site.screenshot(page, "settings-audit-log-filtered")

    # 60 older renames: 50 on the first page, "Older entries" for the rest, filter kept.
    _events(make, _acme(site), None, "renamed", 60, datetime(2021, 1, 1, tzinfo=UTC))
    log.get_by_label("Action").select_option(label="Workspace renamed")
    log.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(51)
    log.get_by_role("link", name="Older entries").click()
    expect(rows).to_have_count(12)  # the header and the 11 oldest of the 60
    expect(log.get_by_label("Action")).to_have_value("renamed")
    expect(log.get_by_role("link", name="Older entries")).to_have_count(0)
    expect(rows.nth(11)).to_contain_text("someone whose account was deleted")


def test_delete_needs_the_exact_name(page: Page, site: Site) -> None:
    _owner(page)
    _tab(page, "General")
    page.get_by_role("link", name="Delete workspace").click()
    expect(page.get_by_role("heading", name="Delete Acme Inc?")).to_be_visible()
    page.get_by_label("Type “Acme Inc” to confirm").fill("acme inc")
    page.get_by_role("button", name="Delete workspace").click()
    expect(page.get_by_label("Type “Acme Inc” to confirm")).to_have_attribute("aria-invalid",
                                                                            "true")
    expect(page.locator("#confirm_name-error")).to_contain_text("Type “Acme Inc” exactly")
    expect(page.get_by_label("Type “Acme Inc” to confirm")).to_have_value("acme inc")
    site.screenshot(page, "settings-delete-refused")
    assert site.db.sql("SELECT count(*) FROM workspaces") == [(1,)]

    page.get_by_label("Type “Acme Inc” to confirm").fill("Acme Inc")
    page.get_by_role("button", name="Delete workspace").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted Acme Inc")
    expect(page).to_have_url(f"{site.base}/")
    expect(page.get_by_role("link", name="Acme Inc")).to_have_count(0)
    assert site.db.sql("SELECT count(*) FROM workspaces") == [(0,)]


def test_the_tabs_fit_a_375_px_phone(browser: Browser, site: Site, make: Factory) -> None:
    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740})
    page = phone.new_page()
    sign_up(page, "Ann Long-Name", "ann.with.a.rather.long.address@example.com")
    _workspace(page, "Acme Inc")
    _join(site, make, "someone.with.a.long.address@example.org", "Someone With A Long Name")
    for tab, shot in (("General", "settings-general-375"), ("Members", "settings-members-375"),
                      ("Audit log", "settings-audit-375")):
        if tab == "Audit log":
            page.goto(f"/w/{SLUG}/settings")
            page.get_by_label("Workspace name").fill("Acme Incorporated Worldwide Holdings")
            page.get_by_role("button", name="Rename").click()
        _tab(page, tab)
        tabs = page.get_by_role("navigation", name="Workspace settings")
        for name in ("General", "Members", "Audit log"):
            expect(tabs.get_by_role("link", name=name)).to_be_in_viewport()
        site.screenshot(page, shot)
        width = page.evaluate("[document.documentElement.scrollWidth, "
                              "document.documentElement.clientWidth]")
        assert width[0] <= width[1], (tab, width)
    phone.close()


def test_settings_work_without_javascript(browser: Browser, site: Site, make: Factory) -> None:
    context = browser.new_context(base_url=site.base, java_script_enabled=False)
    page = context.new_page()
    _owner(page)
    _join(site, make, "bob@example.com", "Bob")
    _tab(page, "General")
    page.get_by_label("Workspace name").fill("Acme Labs")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_contain_text("Renamed to Acme Labs")

    transfer = page.get_by_role("region", name="Transfer ownership")
    transfer.get_by_label("New owner").select_option(label="Bob (bob@example.com, member)")
    transfer.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("You stay an owner.")).to_be_visible()
    page.get_by_role("button", name="Transfer ownership").click()
    expect(page.get_by_role("status")).to_contain_text("bob@example.com is now an owner")

    _tab(page, "Audit log")
    page.get_by_label("Action").select_option(label="Ownership transferred")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("region", name="Audit log").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("bob@example.com")
    expect(rows.nth(1)).to_contain_text("the previous owner stays an owner")
    site.screenshot(page, "settings-audit-no-js")

    _tab(page, "General")
    page.get_by_role("link", name="Delete workspace").click()
    page.get_by_label("Type “Acme Labs” to confirm").fill("Acme")
    page.get_by_role("button", name="Delete workspace").click()
    expect(page.locator("#confirm_name-error")).to_be_visible()
    page.get_by_label("Type “Acme Labs” to confirm").fill("Acme Labs")
    page.get_by_role("button", name="Delete workspace").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted Acme Labs")
    context.close()
