"""Hostile and malformed input through the HTTP API, on SQLite and PostgreSQL.

Every answer is either a success with the value kept literally, or a 4xx with the
`{"error": {"code", "message"}}` body: never a 500, never another shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.conftest import Sink

HOSTILE = [
    "Robert'); DROP TABLE users;--",
    "<script>alert(1)</script>",
    '" onmouseover="x',
    "1' OR '1'='1",
    "%00 \\x00 ${7*7} {{7*7}}",
]
TABLES = {"users", "workspaces", "workspace_members", "workspace_invites", "auth_tokens",
          "email_outbox", "audit_events"}
SIGNUP = "/api/auth/signup"
PASSWORD = "correct horse battery"


def _shape(response: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx in one of `statuses` with the error body; returns the error."""
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert isinstance(body, dict) and set(body) >= {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    return error


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_stored_and_returned_literally(api: Api, name: str) -> None:
    headers = api.signup("ann@example.com", name)
    me = api.client.get("/api/me", headers=headers)
    assert me.status_code == 200 and me.json()["name"] == name

    created = api.client.post("/api/workspaces", json={"name": name}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    slug = created.json()["slug"]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
    listed = api.client.get("/api/workspaces", headers=headers).json()
    assert [(w["name"], w["slug"]) for w in listed] == [(name, slug)]
    assert api.client.get(f"/api/workspaces/{slug}", headers=headers).json()["name"] == name

    assert api.db.tables() >= TABLES
    assert api.db.sql("SELECT name FROM users") == [(name,)]
    assert api.db.sql("SELECT name FROM workspaces") == [(name,)]
    # Sign-in still works for the account afterwards.
    login = api.client.post("/api/auth/login",
                            json={"email": "ann@example.com", "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["name"] == name


def test_an_apostrophe_in_the_email_is_just_a_character(api: Api) -> None:
    headers = api.signup("o'brien+x@example.com", "O'Brien")
    assert api.client.get("/api/me", headers=headers).json()["email"] == "o'brien+x@example.com"
    login = api.client.post("/api/auth/login",
                            json={"email": "O'Brien+X@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    wrong = api.client.post("/api/auth/login",
                            json={"email": "x' OR '1'='1@example.com", "password": PASSWORD})
    api.error(wrong, 401, "invalid_credentials")
    assert api.db.tables() >= TABLES


def test_the_invite_email_escapes_html_in_names(api: Api, smtp: Sink) -> None:
    owner = api.signup("ann@example.com", '" onmouseover="x')
    slug = api.workspace(owner, "<script>alert(1)</script>")
    api.invite(owner, slug, "bob@example.com")
    (message,) = smtp.wait_for(1)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert '" onmouseover="x' not in html and "onmouseover=&#34;x" in html
    # Plain text and the subject are not HTML: there the names stay literal.
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<script>alert(1)</script>" in text
    assert message["Subject"] == \
        'ann@example.com invited you to “<script>alert(1)</script>” on Workspaces'


# --- malformed bodies -----------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
MALFORMED: dict[str, tuple[bytes, dict[str, str]]] = {
    "invalid_json": (b'{"email": "a@example.com", "password": ', JSON),
    "trailing_garbage": (b'{"email": "a@example.com"} xyz', JSON),
    "json_array": (json.dumps(["ann@example.com", PASSWORD, "Ann"]).encode(), JSON),
    "json_string": (b'"ann@example.com"', JSON),
    "json_null": (b"null", JSON),
    "deeply_nested": (b"[" * 10_000 + b"]" * 10_000, JSON),
    "deeply_nested_unclosed": (b"[" * 10_000, JSON),
    "deeply_nested_objects": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON),
    "invalid_utf8": (b'{"email": "\xff\xfe\xfd", "password": "x", "name": "\xc3\x28"}', JSON),
    "invalid_utf8_only": (b"\xff\xfe\xfd\xfc", JSON),
    "text_plain": (json.dumps({"email": "ann@example.com", "password": PASSWORD,
                               "name": "Ann"}).encode(), {"Content-Type": "text/plain"}),
    "form_encoded": (b"email=ann%40example.com&password=x&name=Ann",
                     {"Content-Type": "application/x-www-form-urlencoded"}),
    "bogus_content_type": (b"{}", {"Content-Type": "application/json; charset=nope; ;;"}),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_bodies_answer_4xx_with_the_error_shape(api: Api, case: str) -> None:
    body, headers = MALFORMED[case]
    response = api.client.post(SIGNUP, content=body, headers=headers)
    _shape(response, 400, 415, 422)
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_malformed_bodies_on_an_authenticated_route(api: Api) -> None:
    owner = api.signup("ann@example.com")
    for case in ("invalid_json", "json_array", "deeply_nested", "invalid_utf8"):
        body, headers = MALFORMED[case]
        response = api.client.post("/api/workspaces", content=body,
                                   headers={**owner, **headers})
        _shape(response, 400, 422)
    assert api.client.get("/api/workspaces", headers=owner).json() == []


# --- oversized input ------------------------------------------------------------------------


def _signup(api: Api, **fields: str) -> Any:
    return api.client.post(SIGNUP, json={"email": "ann@example.com", "password": PASSWORD,
                                         "name": "Ann", **fields})


def test_an_email_over_320_characters_is_refused(api: Api) -> None:
    long_email = "a" * 64 + "@" + ".".join(["b" * 60] * 5) + ".com"
    assert len(long_email) > 320
    message = api.error(_signup(api, email=long_email), 422, "invalid_input")
    assert "email" in message
    api.error(_signup(api, email="a" * 10_000 + "@example.com"), 422, "invalid_input")


def test_a_name_over_200_characters_is_refused(api: Api) -> None:
    assert "name" in api.error(_signup(api, name="x" * 201), 422, "invalid_input")
    assert _signup(api, name="x" * 200).status_code == 201
    owner = {"Authorization": f"Bearer {_signup(api, email='b@example.com').json()['token']}"}
    too_long = api.client.post("/api/workspaces", json={"name": "w" * 201}, headers=owner)
    api.error(too_long, 422, "invalid_input")


def test_a_password_over_1024_characters_is_refused(api: Api) -> None:
    assert "password" in api.error(_signup(api, password="p" * 1025), 422, "invalid_input")
    assert _signup(api, password="p" * 1024).status_code == 201
    login = api.client.post("/api/auth/login",
                            json={"email": "ann@example.com", "password": "p" * 10_000})
    api.error(login, 422, "invalid_input")
    login = api.client.post("/api/auth/login",
                            json={"email": "ann@example.com", "password": "p" * 100_000})
    api.error(login, 413, "body_too_large")  # over the 64 KiB body limit: never hashed


def test_a_5_mb_body_is_refused_with_413_before_it_is_parsed(api: Api) -> None:
    big = "x" * (5 * 1024 * 1024)
    response = api.client.post(SIGNUP, json={"email": "ann@example.com", "password": PASSWORD,
                                             "name": big})
    error = _shape(response, 413)
    assert error["code"] == "body_too_large"
    assert str(64 * 1024) in error["message"]
    assert len(response.content) < 64 * 1024, "the error must not echo the input back"
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_a_streamed_body_without_a_length_is_counted_and_refused(api: Api) -> None:
    def chunks() -> Any:  # no Content-Length: chunked transfer encoding
        yield b'{"email": "ann@example.com", "password": "' + PASSWORD.encode() + b'", "name": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    response = api.client.post(SIGNUP, content=chunks(),
                               headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert _shape(response, 413)["code"] == "body_too_large"
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_a_body_just_under_the_limit_is_parsed_normally(api: Api) -> None:
    padding = " " * (60 * 1024)  # JSON whitespace: valid, and near the 64 KiB limit
    body = f'{{"email": "ann@example.com", "password": "{PASSWORD}",{padding}"name": "Ann"}}'
    response = api.client.post(SIGNUP, content=body,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


def test_an_oversized_form_post_gets_the_error_page(api: Api) -> None:
    response = api.client.post("/signup", data={"email": "ann@example.com",
                                                "password": "x" * (100 * 1024)},
                               headers={"Accept": "text/html"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "larger than the limit" in response.text


# --- path parameters ------------------------------------------------------------------------


def test_a_non_uuid_invite_id_is_invalid_input(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    for bad in ("not-a-uuid", "1", "' OR 1=1 --", "0" * 1000):
        for action in ("revoke", "resend"):
            response = api.client.post(f"/api/workspaces/{slug}/invites/{bad}/{action}",
                                       headers=owner)
            api.error(response, 422, "invalid_input")


def test_a_long_or_strange_invite_token_is_not_found(api: Api) -> None:
    for token in ("t" * 1000, "%00", "%2E%2E", "' OR '1'='1", "%F0%9F%92%A9"):
        api.error(api.client.get(f"/api/invites/{token}"), 404, "invite_not_found")
    api.error(api.client.post(f"/api/invites/{'t' * 1000}/decline"), 404, "invite_not_found")
    # An encoded slash is decoded before routing, so this matches no route: still a 404.
    assert api.client.get("/api/invites/..%2F..%2Fapi%2Fme").status_code == 404


# (A literal "../" is resolved by the HTTP client before sending; "%2E%2E" reaches the server.)
@pytest.mark.parametrize("slug", ["%00", "acme%00", "%2E%2E", "%2E%2E%2F%2E%2E%2Fapi%2Fme",
                                  "' OR '1'='1", "acme'--", "a" * 1000])
def test_a_strange_slug_is_not_found(api: Api, slug: str) -> None:
    owner = api.signup("ann@example.com")
    api.workspace(owner)
    for path in (f"/api/workspaces/{slug}", f"/api/workspaces/{slug}/members",
                 f"/api/workspaces/{slug}/invites"):
        response = api.client.get(path, headers=owner)
        assert response.status_code == 404, (path, response.status_code, response.text[:300])
        if "%2F" not in slug:  # an encoded slash matches no route: the router's own 404
            api.error(response, 404, "workspace_not_found")


def test_paths_outside_every_route_answer_the_error_shape(api: Api) -> None:
    """README: errors are `{"error": {"code", "message"}}`; the router's own 404 and 405 too."""
    _shape(api.client.get("/api/invites/..%2F..%2Fapi%2Fme"), 404)
    _shape(api.client.get("/api/no-such-thing"), 404)
    _shape(api.client.put("/api/me", json={}), 405)


def test_nul_characters_in_json_fields_are_refused_not_a_500(api: Api) -> None:
    api.error(api.client.post(SIGNUP, json={"email": "ann@example.com", "password": PASSWORD,
                                            "name": "Ann\u0000"}), 422, "invalid_name")
    api.error(api.client.post(SIGNUP, json={"email": "a\u0000nn@example.com",
                                            "password": PASSWORD, "name": "Ann"}),
              422, "invalid_email")
    owner = api.signup("ann@example.com", password=PASSWORD)
    api.error(api.client.post("/api/workspaces", json={"name": "\u0000"}, headers=owner),
              422, "invalid_name")
    slug = api.workspace(owner)
    api.error(api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "b\u0000@example.com"}, headers=owner),
              422, "invalid_email")
    login = api.client.post("/api/auth/login",
                            json={"email": "ann\u0000@example.com", "password": PASSWORD})
    api.error(login, 401, "invalid_credentials")
    assert api.client.post("/api/auth/login", json={
        "email": "ann@example.com", "password": PASSWORD + "\u0000"}).status_code == 401


# --- query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=abc",
                                   "limit=1e3", "limit=99999999999999999999999",
                                   "status=bogus", "status=PENDING", "status=",
                                   "cursor=" + "c" * 201])
def test_bad_list_parameters_are_invalid_input(api: Api, query: str) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    response = api.client.get(f"/api/workspaces/{slug}/invites?{query}", headers=owner)
    api.error(response, 422, "invalid_input")


@pytest.mark.parametrize("cursor", ["abc", "%00", "' OR 1=1 --", "MjAyNXx6eg"])
def test_a_forged_cursor_is_invalid_cursor(api: Api, cursor: str) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    response = api.client.get(f"/api/workspaces/{slug}/invites?cursor={cursor}", headers=owner)
    api.error(response, 422, "invalid_cursor")
