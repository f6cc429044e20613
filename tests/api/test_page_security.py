"""Browser-facing security: cookie flags, CSRF, headers, and no secret in the logs."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from tests.api.conftest import Api
from tests.conftest import Cli, Sink, link_in, serving
from workspaces.app import create_app
from workspaces.db import create_app_engine, create_sync_engine, parse_url
from workspaces.settings import Settings
from workspaces.web.html import safe_next

PASSWORD = "long enough password"


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
    from workspaces.logs import Redact

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "POST",
                               "/api/invites/SECRETtoken_-x/accept?x=1", "1.1", 200), None)
    Redact().filter(record)
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


def _form(api: Api, page: str, action: str, **fields: str) -> httpx.Response:
    """POST a page's form with the CSRF token that page gave, without following the redirect."""
    response: httpx.Response = api.client.post(
        action, data={"csrf_token": _csrf(api, page), **fields}, follow_redirects=False)
    return response


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 403 and "form has expired" in response.text


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """`{name: whole Set-Cookie header}` of a response."""
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


@pytest.mark.parametrize("value", [
    "{not json",
    '{"kind": "success", "text": "Forged message", "link": null}',
    "eyJraW5kIjoic3VjY2VzcyIsInRleHQiOiJGb3JnZWQgbWVzc2FnZSJ9.Zx1bCA.bad-signature",
])
def test_an_unreadable_or_forged_flash_cookie_is_ignored(api: Api, value: str) -> None:
    api.client.cookies.set("ws_flash", value)
    page = api.client.get("/signin")
    assert page.status_code == 200
    assert 'role="status"' not in page.text and "Forged" not in page.text
    assert _set_cookies(page)["ws_flash"].startswith('ws_flash=""')  # and it is cleared


def test_a_flash_from_a_real_post_shows_once_unaltered_and_not_after_its_max_age(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_up = _form(api, "/signup", "/signup", name="Ann", email="ann@example.com",
                      password=PASSWORD)
    flash = api.client.cookies["ws_flash"]
    assert "Welcome, Ann." in api.client.get(signed_up.headers["location"]).text
    assert "Welcome, Ann." not in api.client.get("/").text  # once

    middle = len(flash) // 2
    api.client.cookies.set("ws_flash", flash[:middle] + ("A" if flash[middle] != "A" else "B")
                           + flash[middle + 1:])
    assert 'role="status"' not in api.client.get("/").text  # altered

    api.client.cookies.set("ws_flash", flash)
    now = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now(self) + 121)
    assert 'role="status"' not in api.client.get("/").text  # replayed after two minutes


def test_a_planted_csrf_cookie_is_not_adopted(api: Api) -> None:
    api.client.cookies.set("ws_csrf", "fixedcsrf")
    api.client.cookies.set("ws_anon", "fixedanon")
    page = api.client.get("/signup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token and token.group(1) not in ("fixedcsrf", "fixedanon")
    issued = _set_cookies(page)["ws_anon"]  # replaced by a cookie of the server's own
    assert "fixedanon" not in issued and "HttpOnly" in issued

    for cookie, value in (("ws_csrf", "fixedcsrf"), ("ws_anon", "fixedanon")):
        api.client.cookies.clear()
        api.client.cookies.set(cookie, value)  # what a cookie-planting attacker controls
        refused = api.client.post("/signup", data={
            "csrf_token": value, "name": "Eve", "email": "eve@example.com", "password": PASSWORD})
        assert _refused(refused), refused.text
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_the_csrf_token_changes_at_sign_in_and_sign_out(api: Api) -> None:
    anonymous = _csrf(api, "/signup")
    assert api.client.post("/signup", data={
        "csrf_token": anonymous, "name": "Ann", "email": "ann@example.com",
        "password": PASSWORD}, follow_redirects=False).status_code == 303
    signed_in = _csrf(api, "/")
    assert signed_in != anonymous
    stale = api.client.post("/workspaces", data={"csrf_token": anonymous, "name": "Acme"})
    assert _refused(stale), stale.text

    assert api.client.post("/signout", data={"csrf_token": signed_in},
                           follow_redirects=False).status_code == 303
    signed_out = _csrf(api, "/signin")
    assert signed_out not in (anonymous, signed_in)
    stale = api.client.post("/signin", data={"csrf_token": signed_in,
                                             "email": "ann@example.com", "password": PASSWORD})
    assert _refused(stale), stale.text
    assert _form(api, "/signin", "/signin", email="ann@example.com",
                 password=PASSWORD).status_code == 303
    assert api.db.sql("SELECT count(*) FROM workspaces") == [(0,)]


@contextmanager
def _https(settings: Settings) -> Iterator[Api]:
    """A client of the same app and database, served at an https BASE_URL."""
    secure = settings.model_copy(update={"base_url": "https://testserver"})
    with TestClient(create_app(secure), base_url="https://testserver") as client:
        yield Api(client, Cli(settings.database_url, {}))


def _assert_host_cookies(response: httpx.Response) -> None:
    cookies = response.headers.get_list("set-cookie")
    assert cookies
    for cookie in cookies:
        assert cookie.startswith("__Host-"), cookie
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie, cookie


def test_over_https_every_cookie_is_host_prefixed_and_hsts_is_sent(settings: Settings) -> None:
    with _https(settings) as api:
        page = api.client.get("/signup")
        _assert_host_cookies(page)
        assert "__Host-ws_anon" in _set_cookies(page)
        signed_up = _form(api, "/signup", "/signup", name="Ann", email="ann@example.com",
                          password=PASSWORD)
        _assert_host_cookies(signed_up)
        assert {"__Host-ws_session", "__Host-ws_flash", "__Host-ws_anon"} <= set(
            _set_cookies(signed_up))
        home = api.client.get("/")
        assert "Welcome, Ann." in home.text and "ann@example.com" in home.text
        for response in (page, signed_up, home, api.client.get("/healthz"),
                         api.client.get("/nowhere"), api.client.get("/api/workspaces")):
            assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_sign_out_over_https_clears_the_host_cookie(settings: Settings) -> None:
    with _https(settings) as api:
        _form(api, "/signup", "/signup", name="Ann", email="ann@example.com", password=PASSWORD)
        signed_out = _form(api, "/", "/signout")
        assert signed_out.status_code == 303
        _assert_host_cookies(signed_out)
        assert _set_cookies(signed_out)["__Host-ws_session"].startswith('__Host-ws_session=""')
        assert "ann@example.com" not in api.client.get("/signin").text


def test_http_responses_carry_no_hsts(api: Api) -> None:
    assert "strict-transport-security" not in api.client.get("/signin").headers


@pytest.mark.parametrize("hostile", [
    None, "", "//evil.example", "/\\evil.example", "\\/evil.example", "/\t/evil.example",
    "/\n/evil.example", " /x", "/x\x00", "https://evil.example", "http:/evil.example",
    "javascript:alert(1)", "evil.example/x", "/%5Cevil.example", "/%09/evil.example",
    "/%2F/evil.example", "///evil.example", "/x\u3000y",
])
def test_safe_next_refuses_anything_but_a_path_on_this_site(hostile: str | None) -> None:
    assert safe_next(hostile) == "/"


@pytest.mark.parametrize("good", ["/", "/w/acme?cursor=x", "/invites/abc", "/w/acme#members",
                                  "/w/a/b?next=%2Fw"])
def test_safe_next_keeps_paths_on_this_site(good: str) -> None:
    assert safe_next(good) == good


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_server_creates_its_sqlite_files_private(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    with _umask(0o022), serving(["--database-url", f"sqlite:///{database}"],
                                {"SECRET_KEY": ""}) as (base, _):
        response = httpx.post(f"{base}/api/auth/signup", json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"})
        assert response.status_code == 201, response.text
        files = [database, *(Path(f"{database}{s}") for s in ("-wal", "-shm", ".secret"))]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


@pytest.mark.parametrize("engine", ["sync", "app"])
def test_an_existing_sqlite_file_is_tightened(tmp_path: Path, engine: str) -> None:
    database = tmp_path / "shared.db"
    for path in (database, Path(f"{database}-wal")):
        path.touch()
        path.chmod(0o664)
    url = parse_url(f"sqlite:///{database}")
    made = create_sync_engine(url) if engine == "sync" else create_app_engine(url).sync_engine
    made.dispose()
    assert (_mode(database), _mode(Path(f"{database}-wal"))) == (0o600, 0o600)


def test_a_read_only_engine_never_creates_the_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "missing.db"
    create_sync_engine(parse_url(f"sqlite:///{database}"), read_only=True).dispose()
    assert not database.exists()
