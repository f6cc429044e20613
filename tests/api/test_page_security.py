"""Browser-facing security: cookie flags, CSRF, headers, and no secret in the logs."""

from __future__ import annotations

import logging
import re

import pytest

from tests.api.conftest import Api
from tests.conftest import Sink, link_in


def _csrf(api: Api, path: str = "/signup") -> str:
    page = api.client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_session_cookie_flags_and_security_headers(api: Api) -> None:
    token = _csrf(api)
    response = api.client.post("/signup", data={
        "csrf_token": token, "name": "Ann", "email": "ann@example.com",
        "password": "long enough password"}, follow_redirects=False)
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("ws_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = api.client.get("/")
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script; only /static/app.js
    assert not re.search(r'(src|href)="https?://', page.text)  # nothing from third parties


def test_a_post_without_the_csrf_token_changes_nothing(api: Api) -> None:
    _csrf(api)
    for data in ({"name": "Eve", "email": "eve@example.com", "password": "long enough pw"},
                 {"csrf_token": "forged", "name": "Eve", "email": "eve@example.com",
                  "password": "long enough pw"}):
        refused = api.client.post("/signup", data=data)
        assert refused.status_code == 403 and "form has expired" in refused.text
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_access_logs_redact_invite_tokens() -> None:
    from workspaces.web.app import RedactInviteTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "POST",
                               "/api/invites/SECRETtoken_-x/accept?x=1", "1.1", 200), None)
    RedactInviteTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "POST /api/invites/[redacted]/accept?x=1 ' \
        'HTTP/1.1" 200'


def test_no_token_or_password_reaches_the_logs(api: Api, smtp: Sink,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    owner = api.signup("ann@example.com", password="ann's secret password")
    slug = api.workspace(owner)
    api.invite(owner, slug, "bob@example.com")
    token = link_in(smtp.wait_for(1)[0])
    bob = api.signup("bob@example.com", password="bob's secret password")
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records  # the app's own loggers
                        if r.name.startswith(("workspaces", "uvicorn", "sqlalchemy")))
    for secret in (token, owner["Authorization"].split()[1], bob["Authorization"].split()[1],
                   "ann's secret password", "bob's secret password"):
        assert secret not in logged
