"""The Members tab and the invite page, driven in a real browser by role and label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import text

from tests.conftest import link_in
from tests.ui.conftest import Site, sign_up
from workspaces.db import create_sync_engine, parse_url
from workspaces.schema.lock import LOCK_KEYS


def _workspace(page: Page, name: str = "Acme Inc") -> None:
    page.get_by_label("Workspace name").fill(name)
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def _invite(page: Page, email: str, role: str = "member") -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role", exact=True).select_option(role)
    page.get_by_role("button", name="Send invite", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"Invite sent to {email}")


def _row(page: Page, email: str) -> Locator:
    return page.get_by_role("row").filter(has_text=email)


def test_invite_by_the_form_then_the_invitee_signs_up_and_joins(
    page: Page, browser: Browser, site: Site
) -> None:
    sign_up(page, "Ann Admin", "ann@example.com")
    expect(page.get_by_role("status")).to_contain_text("Welcome, Ann Admin")
    _workspace(page)
    expect(page.get_by_role("link", name="Members")).to_have_attribute("aria-current", "page")
    _invite(page, "bob@example.com", "admin")
    link = page.get_by_label("Invite link (shown once; share it only with the invitee)")
    shown = link.input_value()
    assert shown.startswith(f"{site.base}/invites/")
    expect(page.get_by_role("button", name="Copy link")).to_be_visible()  # JS enhancement ran
    expect(_row(page, "bob@example.com")).to_contain_text("pending")
    site.screenshot(page, "members-tab")

    token = link_in(site.mail.wait_for(1)[0])
    assert shown.endswith(token)
    newcomer = browser.new_context(base_url=site.base)
    invitee = newcomer.new_page()
    invitee.goto(f"/invites/{token}")
    expect(invitee.get_by_role("heading", name="Join Acme Inc")).to_be_visible()
    expect(invitee.get_by_text("Ann Admin")).to_be_visible()
    expect(invitee.get_by_label("Email")).to_have_value("bob@example.com")
    expect(invitee.get_by_label("Email")).to_have_attribute("readonly", "")
    site.screenshot(invitee, "invite-page")
    invitee.get_by_label("Name").fill("Bob Builder")
    invitee.get_by_label("Password").fill("bob's long password")
    invitee.get_by_role("button", name="Create account and join").click()
    expect(invitee.get_by_role("status")).to_contain_text("you joined Acme Inc")
    expect(invitee.get_by_role("heading", level=1)).to_contain_text("you are admin")
    newcomer.close()

    page.reload()
    members = page.get_by_role("region", name="Members")
    expect(members.get_by_role("row").filter(has_text="Bob Builder")).to_contain_text(
        "bob@example.com")
    expect(members.get_by_role("row").filter(has_text="Bob Builder")).to_contain_text("admin")
    invites = page.get_by_role("region", name="Invites")
    expect(invites.get_by_role("row").filter(has_text="bob@example.com")).to_contain_text(
        "accepted")


def test_resend_and_revoke_from_the_invites_table(page: Page, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    _invite(page, "carol@example.com")
    first = link_in(site.mail.wait_for(1)[0])
    page.get_by_role("button", name="Resend invite to carol@example.com").click()
    expect(page.get_by_role("status")).to_contain_text("Invite re-sent to carol@example.com")
    second = link_in(site.mail.wait_for(2)[1])
    assert first != second
    page.get_by_role("button", name="Revoke invite to carol@example.com").click()
    # Asked first (a page of its own: no JavaScript needed); Cancel would change nothing.
    expect(page.get_by_role("heading", name="Revoke the invite to carol@example.com?")) \
        .to_be_visible()
    site.screenshot(page, "confirm-revoke")
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Invite to carol@example.com revoked")
    expect(page.get_by_role("row").filter(has_text="carol@example.com")).to_contain_text("revoked")
    expect(page.get_by_role("button", name="Revoke invite to carol@example.com")).to_have_count(0)
    page.goto(f"/invites/{second}")
    expect(page.get_by_role("alert")).to_contain_text("This invitation was withdrawn")


def test_a_wrong_account_sees_the_mismatch_and_the_invite_stays_pending(
    page: Page, browser: Browser, site: Site
) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    _invite(page, "dave@example.com")
    token = link_in(site.mail.wait_for(1)[0])
    other = browser.new_context(base_url=site.base)
    mallory = other.new_page()
    sign_up(mallory, "Mallory", "mallory@example.com")
    mallory.goto(f"/invites/{token}")
    expect(mallory.get_by_role("alert")).to_contain_text(
        "You are signed in as mallory@example.com; this invitation is for dave@example.com")
    expect(mallory.get_by_role("button", name="Accept")).to_have_count(0)
    expect(mallory.get_by_role("main").get_by_role("button", name="Sign out")).to_be_visible()
    other.close()
    page.reload()
    expect(page.get_by_role("row").filter(has_text="dave@example.com")).to_contain_text("pending")


def test_an_expired_invite_page_says_so_and_who_to_ask(page: Page, site: Site) -> None:
    sign_up(page, "Ann Admin", "ann@example.com")
    _workspace(page)
    _invite(page, "erin@example.com")
    token = link_in(site.mail.wait_for(1)[0])
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")
    site.db.sql(f"UPDATE workspace_invites SET expires_at = '{past}'")
    page.goto(f"/invites/{token}")
    expect(page.get_by_role("alert")).to_contain_text("This invitation expired on")
    expect(page.get_by_role("alert")).to_contain_text(
        "Ask “Ann Admin” (ann@example.com) for a new one")
    site.screenshot(page, "invite-expired")
    page.goto("/")
    page.get_by_role("link", name="Acme Inc", exact=True).click()
    expect(page.get_by_role("row").filter(has_text="erin@example.com")).to_contain_text("expired")


def test_form_errors_sit_next_to_the_field_and_keep_the_input(page: Page) -> None:
    page.goto("/signup")
    page.get_by_label("Name").fill("Frank")
    page.get_by_label("Email").fill("frank@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_contain_text("8 to 1024 characters")
    expect(page.get_by_label("Name")).to_have_value("Frank")
    expect(page.get_by_label("Email")).to_have_value("frank@example.com")

    sign_up(page, "Frank", "frank@example.com")
    _workspace(page)
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Send invite").click()
    expect(page.locator("#email-error")).to_contain_text("such as name@example.com")
    expect(page.get_by_label("Email")).to_have_value("not an address")


def test_a_member_sees_the_members_read_only(page: Page, browser: Browser, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    _invite(page, "gus@example.com")
    token = link_in(site.mail.wait_for(1)[0])
    other = browser.new_context(base_url=site.base)
    gus = other.new_page()
    gus.goto(f"/invites/{token}")
    gus.get_by_label("Name").fill("Gus")
    gus.get_by_label("Password").fill("gus password 1")
    gus.get_by_role("button", name="Create account and join").click()
    expect(gus.get_by_role("heading", level=1)).to_contain_text("you are member")
    expect(gus.get_by_role("cell", name="ann@example.com")).to_be_visible()
    expect(gus.get_by_role("button", name="Send invite")).to_have_count(0)
    expect(gus.get_by_role("button", name="Remove ann@example.com")).to_have_count(0)
    expect(gus.get_by_text("Only owners and admins can change members")).to_be_visible()
    other.close()

    page.reload()
    page.get_by_label("Role for gus@example.com").select_option("admin")
    page.get_by_role("button", name="Change role of gus@example.com").click()
    expect(page.get_by_role("status")).to_contain_text("gus@example.com is now admin")
    page.get_by_role("button", name="Remove gus@example.com").click()
    expect(page.get_by_role("heading", name="Remove gus@example.com?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()  # nothing happens
    expect(page.get_by_role("region", name="Members")).to_contain_text("gus@example.com")
    page.get_by_role("button", name="Remove gus@example.com").click()
    page.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Member removed")
    members = page.get_by_role("region", name="Members")
    expect(members.get_by_role("cell", name="gus@example.com")).to_have_count(0)


def test_a_stale_schema_shows_an_outage_page_not_a_traceback(page: Page, site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    site.db.sql("DROP TABLE workspace_invites" + (" CASCADE" if site.db.is_pg else ""))
    response = page.goto("/w/acme-inc")
    assert response is not None and response.status == 503
    expect(page.get_by_role("heading", name="Service unavailable")).to_be_visible()
    main = page.get_by_role("main")  # no deploy is running: waiting will not help
    expect(main).to_contain_text("unavailable until the people who run it fix a problem")
    expect(main).not_to_contain_text("upgraded")
    expect(main).not_to_contain_text("workspace_invites")
    expect(main).not_to_contain_text("workspaces db")
    assert "Traceback" not in page.content()
    site.screenshot(page, "schema-out-of-date")


def test_a_stale_schema_during_a_deploy_shows_the_upgrade_page(page: Page, site: Site) -> None:
    if not site.db.is_pg:
        pytest.skip("SQLite has no deploy lock to see: a deploy there is never announced")
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    site.db.sql("DROP TABLE workspace_invites CASCADE")
    engine = create_sync_engine(parse_url(site.db.url))
    try:
        with engine.connect() as deploy:  # holds the deploy lock as `db deploy` does
            assert deploy.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                  LOCK_KEYS).scalar()
            response = page.goto("/w/acme-inc")
            assert response is not None and response.status == 503
            expect(page.get_by_role("heading", name="Service is being upgraded")).to_be_visible()
            main = page.get_by_role("main")  # it heals by itself: people are told to wait
            expect(main).to_contain_text("being upgraded. Try again in a few minutes.")
            expect(main).not_to_contain_text("workspace_invites")
            expect(main).not_to_contain_text("workspaces db")
            site.screenshot(page, "schema-upgrading")
            deploy.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEYS)
    finally:
        engine.dispose()


def test_an_existing_user_signs_in_from_the_invite_and_accepts(
    page: Page, browser: Browser, site: Site
) -> None:
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    _invite(page, "hank@example.com")
    token = link_in(site.mail.wait_for(1)[0])
    other = browser.new_context(base_url=site.base, viewport={"width": 390, "height": 844})
    hank = other.new_page()
    sign_up(hank, "Hank", "hank@example.com", "hank's password")
    hank.get_by_role("button", name="Sign out").click()
    hank.goto(f"/invites/{token}")
    hank.get_by_role("link", name="Sign in to accept").click()
    hank.get_by_label("Email").fill("HANK@example.com")
    hank.get_by_label("Password").fill("hank's password")
    hank.get_by_role("button", name="Sign in").click()
    expect(hank).to_have_url(f"{site.base}/invites/{token}")
    site.screenshot(hank, "invite-page-phone")
    hank.get_by_role("button", name="Accept").click()
    expect(hank.get_by_role("status")).to_contain_text("You joined Acme Inc as member")
    other.close()


def test_the_members_tab_fits_a_375_px_phone(browser: Browser, site: Site) -> None:
    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740})
    page = phone.new_page()
    sign_up(page, "Ann Long-Name", "ann.with.a.rather.long.address@example.com")
    _workspace(page)
    _invite(page, "someone.with.a.long.address@example.org")
    _invite(page, "carol@example.com")
    page.reload()
    site.screenshot(page, "members-tab-375")
    width = page.evaluate("[document.documentElement.scrollWidth, "
                          "document.documentElement.clientWidth]")
    assert width[0] <= width[1], width
    expect(page.get_by_role("button", name="Revoke invite to carol@example.com")).to_be_visible()
    phone.close()


def test_an_error_page_with_the_longest_request_id_fits_a_375_px_phone(
        browser: Browser, site: Site) -> None:
    """The reference shown for support is the request's id, up to 128 characters sent by a
    proxy or client: it wraps rather than widening the page."""
    reference = "r" * 128
    phone = browser.new_context(base_url=site.base, viewport={"width": 375, "height": 740},
                                extra_http_headers={"X-Request-ID": reference})
    page = phone.new_page()
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_text(reference)).to_be_visible()
    width = page.evaluate("[document.documentElement.scrollWidth, "
                          "document.documentElement.clientWidth]")
    assert width[0] <= width[1], width
    phone.close()
