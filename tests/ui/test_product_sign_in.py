"""examples/product end to end: a product that nobody here wrote the OIDC side of (Authlib's
client, joserfc) signs a user in with a real `workspaces serve` through Chromium, shows the
workspace and role from the tokens, calls our API with the access token, verifies it offline
against the JWKS, and signs out through RP-initiated logout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import REPO, free_port, spawn, wait_until_up
from tests.ui.conftest import Site

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Product:
    base: str
    client_id: str


def _cli(site: Site, *args: str) -> dict[str, object]:
    """The operator's command, as a process (this worker's browser holds an event loop)."""
    process = spawn([*args, "--database-url", site.db.url, "--json"], {"DATABASE_URL": None})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    answer: dict[str, object] = json.loads(out)
    return answer


@pytest.fixture
def product(site: Site) -> Iterator[Product]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    made = _cli(site, "clients", "create", "--name", "Example product",
                "--redirect-uri", f"{base}/callback", "--post-logout-redirect-uri", f"{base}/")
    client = made["client"]
    assert isinstance(client, dict)
    env = {**os.environ, "PRODUCT_ISSUER": site.base, "PRODUCT_CLIENT_ID": client["id"],
           "PRODUCT_CLIENT_SECRET": str(made["client_secret"]),
           "PRODUCT_SESSION_SECRET": "product-session-secret-for-tests-only"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.product.app:app", "--host", "127.0.0.1",
         "--port", str(port)], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"{base}/", process, process.communicate, what="example product")
        yield Product(base, str(client["id"]))
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_product_signs_in_with_workspaces_and_reads_the_workspace_from_the_token(
        site: Site, product: Product, page: Page) -> None:
    _cli(site, "users", "create", "--email", "ada@example.com", "--name", "Ada Lovelace",
         "--password", PASSWORD)
    _cli(site, "users", "create", "--email", "bob@example.com", "--name", "Bob",
         "--password", PASSWORD)
    made = _cli(site, "workspaces", "create", "--name", "Analytical Engines",
                "--owner", "ada@example.com")
    slug = str(made["slug"])
    _cli(site, "workspaces", "create", "--name", "Bob's own", "--owner", "bob@example.com")

    page.goto(product.base + "/")
    page.get_by_role("link", name="Sign in with Workspaces").click()
    # Our sign-in page, on our origin, with the flow waiting behind it.
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.url.startswith(site.base + "/signin")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Consent, with the one workspace to pick: never a workspace Ada is not in.
    expect(page.get_by_role("heading", name="Example product wants to use your Workspaces "
                                           "account")).to_be_visible()
    expect(page.get_by_label("Analytical Engines")).to_be_checked()
    expect(page.get_by_text("Bob's own")).to_have_count(0)
    page.get_by_role("button", name="Allow").click()

    # Back in the product: who, which workspace, which role, from the ID token.
    expect(page.locator("#email")).to_have_text("ada@example.com")
    expect(page.locator("#workspace")).to_have_text(slug)
    expect(page.locator("#role")).to_have_text("owner")
    # Our API answered the product's call made with the user's access token...
    expect(page.locator("#members li")).to_have_text(["ada@example.com (owner)"])
    # ...and the product verified that token offline against our JWKS.
    expect(page.locator("#token-role")).to_have_text("owner")

    # Signing out of the product ends the Workspaces session too (after a confirmation on
    # our page: a GET changes nothing), and comes back only to the registered address.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign out of Workspaces?")).to_be_visible()
    assert page.url.startswith(site.base + "/oauth/logout")
    page.locator("main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are not signed in.")).to_be_visible()
    # The registered address, with the `state` the product sent to the end-session endpoint.
    assert page.url.startswith(product.base + "/?state=")
    page.goto(site.base + "/")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()

    # Signing in again remembers the consent: only the workspace is asked for this time.
    page.goto(product.base + "/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Choose a workspace for Example product")
           ).to_be_visible()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#role")).to_have_text("owner")
