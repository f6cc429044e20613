"""The Webhooks tab in a real browser at 375 px without JavaScript: add an endpoint with a long
URL, see its secret once, send a test message and find it in the delivery log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer

from tests.conftest import Cli, Sink, serving
from tests.ui.conftest import Site, fits, sign_up
from tests.ui.test_members_tab import _workspace

# A receiver's path as chat services hand them out: long, one word, a token in it.
LONG_PATH = "/hooks/services/T0123456789/B0123456789/" + "x" * 150


@pytest.fixture
def site(app_db: str, smtp: Sink) -> Iterator[Site]:
    """A server that allows workspaces' receivers on this machine
    (WORKSPACE_WEBHOOK_ALLOWED_NETWORKS)."""
    env = {"SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_POLL_SECONDS": "0.2",
           "WORKSPACE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with serving(["--database-url", app_db], env) as (base, _):
        yield Site(base, Cli(app_db, {}), smtp)


def test_add_an_endpoint_see_its_secret_once_and_send_a_test(
        phone: Page, site: Site, httpserver: HTTPServer) -> None:
    httpserver.expect_request(LONG_PATH, method="POST").respond_with_data("ok")
    url = f"http://127.0.0.1:{httpserver.port}{LONG_PATH}"
    page = phone
    sign_up(page, "Ann", "ann@example.com")
    _workspace(page)
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    assert fits(page)

    page.get_by_label("URL").fill(url)
    page.get_by_label("Description").fill("Our billing system's seat counter")
    page.get_by_label("member.added").check()
    page.get_by_label("member.removed").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("status").first).to_contain_text("shown only on this page")
    secret = page.get_by_label("Signing secret (shown once)")
    assert secret.input_value().startswith("whsec_")
    expect(page.get_by_role("heading", level=2).first).to_contain_text(url[:40])
    site.screenshot(page, "webhook-created-375")
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")

    page.get_by_role("button", name="Send test message").click()
    expect(page.get_by_role("status").first).to_contain_text("Test message queued")
    expect(page.get_by_label("Signing secret (shown once)")).to_have_count(0)  # once
    log = page.get_by_role("region", name="Delivery log")
    expect(log.get_by_role("row").filter(has_text="webhook.test")).to_have_count(1)
    site.screenshot(page, "webhook-delivery-log-375")
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")

    page.get_by_role("link", name="All endpoints").click()
    expect(page.get_by_role("row").filter(has_text="member.added, member.removed")
           ).to_have_count(1)
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")

    page.get_by_role("link", name=f"Manage {url}").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this webhook endpoint?")).to_be_visible()
    assert fits(page)
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
