"""/docs renders offline: Swagger UI is served by the application under its own CSP."""

from __future__ import annotations

from playwright.sync_api import Browser, Route, expect

from tests.ui.conftest import Site


def test_the_api_docs_render_with_no_network_but_the_server(browser: Browser,
                                                             site: Site) -> None:
    context = browser.new_context(base_url=site.base)
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(site.base):
            route.continue_()
        else:  # a CDN, fonts, anything: as if offline
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    response = page.goto("/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    expect(page.get_by_text("/api/auth/password-reset", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Workspaces 0.1.0 OAS 3.1")).to_be_visible()
    site.screenshot(page, "api-docs-offline")
    assert elsewhere == [] and refused == [], (elsewhere, refused)
    context.close()
