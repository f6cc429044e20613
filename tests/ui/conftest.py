"""Browser tests: a real `workspaces serve` process, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import REPO, Cli, Sink, serving

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
# An expectation waits up to 30 s (Playwright's default is 5 s): a hang guard, as the suite's
# others are, not a target a loaded machine may miss. Actions already wait 30 s.
expect.set_options(timeout=30_000)
# The longest a newcomer types without a space: a workspace name of 64 characters, addresses of
# 60. Pages must wrap them rather than scroll sideways.
LONG_NAME = "Internationalconsolidatedholdingsandsubsidiariesworldwidelimited"
LONG_EMAIL = "maximilianalexanderfeatherstonehaughsmythe@examplemail.co.uk"
LONG_EMAIL_2 = "christopheralexanderfeatherstonehaugh1987@mailprovider.co.uk"
# The words (up to 20 characters: not a long name or address) that the browser broke across
# lines inside `root`; text hidden for screen readers only is left out.
_BROKEN_WORDS = """root => {
  const broken = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(".sr-only, option")) continue;
    for (const word of node.data.matchAll(/\\S+/g)) {
      if (word[0].length > 20) continue;
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const lines = new Set([...range.getClientRects()].map(r => Math.round(r.bottom)));
      if (lines.size > 1) broken.push(word[0]);
    }
  }
  return broken;
}"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


@dataclass
class Site:
    base: str
    db: Cli
    mail: Sink

    def screenshot(self, page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def site(app_db: str, smtp: Sink) -> Iterator[Site]:
    env = {"SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_POLL_SECONDS": "0.2"}
    with serving(["--database-url", app_db], env) as (base, _):
        yield Site(base, Cli(app_db, {}), smtp)


@pytest.fixture
def context(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=site.base)
    yield ctx
    ctx.close()


@pytest.fixture
def phone(browser: Browser, site: Site) -> Iterator[Page]:
    """A 375 px wide phone with JavaScript off."""
    context = browser.new_context(base_url=site.base, java_script_enabled=False,
                                  viewport={"width": 375, "height": 740})
    yield context.new_page()
    context.close()

@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_up(page: Page, name: str, email: str, password: str = "correct horse battery") -> None:
    page.goto("/signup")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()


def sign_in(page: Page, email: str, password: str = "correct horse battery") -> Page:
    """Sign in on the page, and wait until it shows the signed-in header."""
    page.goto("/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def fits(page: Page) -> bool:
    """Nothing on the page is wider than the window: it does not scroll sideways."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= "
                              "document.documentElement.clientWidth"))


def broken_words(page: Page, selector: str) -> list[str]:
    """The short words split across two lines ("membe/r") in the elements `selector` finds."""
    return [word for element in page.locator(selector).all()
            for word in element.evaluate(_BROKEN_WORDS)]
