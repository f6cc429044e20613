"""A newcomer finds their way: their own row on the Members tab, with only what they may do to
themself; the account page reached from a visible link, showing a pending address change that
can be cancelled; a sign-up form that tells every problem at once, in our words."""

from __future__ import annotations

import re

import httpx
import pytest
from email_validator import EmailNotValidError, validate_email
from playwright.sync_api import Browser, Locator, Page, expect

from tests.conftest import link_in
from tests.ui.conftest import Site, fits, sign_in, sign_up

PASSWORD = "correct horse battery"


def _api_signup(site: Site, email: str, name: str) -> dict[str, str]:
    made = httpx.post(f"{site.base}/api/auth/signup",
                      json={"email": email, "password": PASSWORD, "name": name})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def _join(site: Site, owner: dict[str, str], slug: str, email: str, name: str,
          role: str) -> None:
    issued = httpx.post(f"{site.base}/api/workspaces/{slug}/invites",
                        json={"email": email, "role": role}, headers=owner)
    assert issued.status_code == 201, issued.text
    token = issued.json()["accept_url"].rsplit("/", 1)[1]
    accepted = httpx.post(f"{site.base}/api/invites/{token}/accept",
                          headers=_api_signup(site, email, name))
    assert accepted.status_code == 200, accepted.text



def _row(page: Page, email: str) -> Locator:
    return page.get_by_role("region", name="Members").get_by_role("row").filter(has_text=email)


def _buttons(row: Locator) -> list[str]:
    return sorted(b.get_attribute("aria-label") or b.inner_text()
                  for b in row.get_by_role("button").all())


def test_each_member_sees_their_own_row_and_only_what_they_may_do_to_themself(
        browser: Browser, site: Site) -> None:
    ann = _api_signup(site, "ann@example.com", "Ann")
    made = httpx.post(f"{site.base}/api/workspaces", json={"name": "Acme"}, headers=ann)
    assert made.status_code == 201, made.text
    _join(site, ann, "acme", "bob@example.com", "Bob", "admin")
    _join(site, ann, "acme", "gus@example.com", "Gus", "member")

    seen = {}
    for email in ("ann@example.com", "bob@example.com", "gus@example.com"):
        page = sign_in(browser.new_context(base_url=site.base).new_page(), email, PASSWORD)
        page.goto("/w/acme")
        rows = page.get_by_role("region", name="Members").get_by_role("row")
        expect(rows.filter(has_text="you")).to_have_count(1)
        expect(_row(page, email).get_by_text("you", exact=True)).to_be_visible()
        seen[email] = {other: _buttons(_row(page, other)) for other in
                       ("ann@example.com", "bob@example.com", "gus@example.com")}
        if email == "bob@example.com":
            site.screenshot(page, "members-tab-own-row")
        page.context.close()

    # Ann, the only owner, cannot leave nor demote herself: her row has nothing.
    assert seen["ann@example.com"] == {
        "ann@example.com": [],
        "bob@example.com": ["Change role of bob@example.com", "Remove bob@example.com"],
        "gus@example.com": ["Change role of gus@example.com", "Remove gus@example.com"]}
    # Bob, an admin, leaves (not "Remove" himself) and may step down; an owner is above him.
    assert seen["bob@example.com"] == {
        "ann@example.com": [],
        "bob@example.com": ["Change role of bob@example.com", "Leave Acme"],
        "gus@example.com": ["Change role of gus@example.com", "Remove gus@example.com"]}
    # Gus, a member, may only leave.
    assert seen["gus@example.com"] == {
        "ann@example.com": [], "bob@example.com": [], "gus@example.com": ["Leave Acme"]}



def test_a_pending_address_change_is_shown_and_can_be_cancelled(page: Page,
                                                                 site: Site) -> None:
    sign_up(page, "Ann", "ann@example.com")
    page.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Your account").click()
    expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()
    section = page.get_by_role("region", name="Email address", exact=True)
    expect(section.get_by_role("note")).to_have_count(0)

    section.get_by_label("New email address").fill("ann.new@example.com")
    section.get_by_label("Your password").fill(PASSWORD)
    section.get_by_role("button", name="Send a confirmation link").click()
    confirm = site.mail.newest("ann.new@example.com", "Confirm your new Workspaces address")
    token = link_in(confirm, "email")
    section = page.get_by_role("region", name="Email address", exact=True)
    expect(section.get_by_role("note")).to_contain_text(
        "Waiting for you to confirm ann.new@example.com")
    site.screenshot(page, "account-pending-address")

    page.reload()  # a GET shows it and changes nothing
    section.get_by_role("button", name="Cancel the change to ann.new@example.com").click()
    expect(page.get_by_role("status")).to_contain_text(
        "The change to ann.new@example.com was cancelled")
    expect(page.get_by_role("region", name="Email address", exact=True).get_by_role("note")
           ).to_have_count(0)
    response = page.goto(f"/email/{token}")
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    assert site.db.sql("SELECT email FROM users") == [("ann@example.com",)]


def test_a_sign_up_tells_every_problem_at_once_in_our_words(phone: Page, site: Site) -> None:
    """On a phone without JavaScript: the password rule is shown before any mistake; a form
    with three wrong fields tells all three next to their fields, the address in our words
    (not the validation library's), and keeps what was typed."""
    typed = "ann@@example.com"
    with pytest.raises(EmailNotValidError) as library:
        validate_email(typed, check_deliverability=False)
    phone.goto("/signup")
    rule = "Use 8 to 1024 characters."
    expect(phone.get_by_label("Password")).to_have_accessible_description(rule)
    phone.get_by_label("Name").fill(" ")
    phone.get_by_label("Email").fill(typed)
    phone.get_by_label("Password").fill("short")
    phone.get_by_role("button", name="Create account").click()

    for label, said in (("Name", "The name must be 1 to 200 characters."),
                        ("Email", "Enter an email address such as name@example.com"),
                        ("Password", f"{rule} Choose a password of 8 to 1024 characters.")):
        field = phone.get_by_label(label)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(re.compile(re.escape(said)))
    expect(phone.get_by_label("Email")).to_have_value(typed)
    main = phone.get_by_role("main")
    expect(main).not_to_contain_text(str(library.value))
    expect(main).not_to_contain_text("@-sign")
    site.screenshot(phone, "sign-up-every-problem-phone")
    assert fits(phone)
    assert site.db.sql("SELECT count(*) FROM users") == [(0,)]
