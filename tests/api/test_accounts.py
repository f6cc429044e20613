"""Accounts through the HTTP API: sign up, sign in, sign out, bearer tokens, on both databases."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import Api

PASSWORD = "correct horse battery"


def _signup(api: Api, email: str, password: str = PASSWORD, name: str = "Ann") -> Any:
    return api.client.post("/api/auth/signup",
                           json={"email": email, "password": password, "name": name})


def _login(api: Api, email: str, password: str = PASSWORD) -> Any:
    return api.client.post("/api/auth/login", json={"email": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sign_up_returns_a_token_that_works(api: Api) -> None:
    response = _signup(api, "ann@example.com", name="  Ann   Smith ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token"].startswith("wst_")
    assert body["user"]["email"] == "ann@example.com"
    assert body["user"]["name"] == "Ann Smith"
    me = api.client.get("/api/me", headers=_bearer(body["token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == body["user"]["id"]
    assert me.json()["email"] == "ann@example.com" and me.json()["name"] == "Ann Smith"


def test_emails_are_lower_cased_and_compared_case_insensitively(api: Api) -> None:
    created = _signup(api, "Ann@Example.COM")
    assert created.status_code == 201, created.text
    assert created.json()["user"]["email"] == "ann@example.com"
    assert api.db.sql("SELECT email FROM users") == [("ann@example.com",)]

    login = _login(api, "ann@example.com")
    assert login.status_code == 200, login.text
    assert login.json()["user"]["id"] == created.json()["user"]["id"]
    assert _login(api, "ANN@EXAMPLE.com").status_code == 200

    message = api.error(_signup(api, "aNN@example.com"), 409, "email_taken")
    assert "ann@example.com" in message
    assert api.db.sql("SELECT count(*) FROM users") == [(1,)]


def test_sign_up_validation_errors(api: Api) -> None:
    api.error(_signup(api, "ann@example.com", password="short12"), 422, "invalid_password")
    assert _signup(api, "ok8@example.com", password="12345678").status_code == 201
    api.error(_signup(api, "not-an-email"), 422, "invalid_email")
    api.error(_signup(api, "ann@"), 422, "invalid_email")
    api.error(_signup(api, ""), 422, "invalid_email")
    api.error(_signup(api, "ann@example.com", name=""), 422, "invalid_name")
    api.error(_signup(api, "ann@example.com", name=" \t  "), 422, "invalid_name")
    missing = api.client.post("/api/auth/signup",
                              json={"email": "ann@example.com", "name": "Ann"})
    api.error(missing, 422, "invalid_input")
    assert any(f["field"].endswith("password") for f in missing.json()["error"]["fields"])
    api.error(api.client.post("/api/auth/signup", json={"email": "ann@example.com",
                                                        "password": PASSWORD}),
              422, "invalid_input")
    # None of the refused sign-ups created an account.
    assert api.db.sql("SELECT email FROM users") == [("ok8@example.com",)]


def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    api.signup("ann@example.com")
    wrong = api.error(_login(api, "ann@example.com", "wrong password!"), 401,
                      "invalid_credentials")
    unknown = api.error(_login(api, "nobody@example.com"), 401, "invalid_credentials")
    garbage = api.error(_login(api, "not-an-email"), 401, "invalid_credentials")
    assert wrong == unknown == garbage
    assert "token" not in _login(api, "ann@example.com", "wrong password!").json()


def test_logout_revokes_only_that_token(api: Api) -> None:
    first = api.signup("ann@example.com")
    login = _login(api, "ann@example.com")
    assert login.status_code == 200, login.text
    second = _bearer(login.json()["token"])
    assert second != first

    assert api.client.post("/api/auth/logout", headers=first).status_code == 204
    api.error(api.client.get("/api/me", headers=first), 401, "invalid_token")
    api.error(api.client.post("/api/auth/logout", headers=first), 401, "invalid_token")
    me = api.client.get("/api/me", headers=second)
    assert me.status_code == 200 and me.json()["email"] == "ann@example.com"
    api.error(api.client.post("/api/auth/logout"), 401, "not_authenticated")


def test_me_needs_a_valid_token(api: Api) -> None:
    api.signup("ann@example.com")
    api.error(api.client.get("/api/me"), 401, "not_authenticated")
    api.error(api.client.get("/api/me", headers=_bearer("garbage")), 401, "invalid_token")
    api.error(api.client.get("/api/me", headers=_bearer("wst_" + "A" * 43)), 401,
              "invalid_token")


def test_tokens_and_passwords_are_stored_only_as_hashes(api: Api) -> None:
    password = "a very particular passphrase"
    created = _signup(api, "ann@example.com", password=password)
    assert created.status_code == 201, created.text
    login = _login(api, "ann@example.com", password)
    assert login.status_code == 200, login.text
    tokens = {created.json()["token"], login.json()["token"]}
    secrets = tokens | {password}

    hashes = [str(h) for (h,) in api.db.sql("SELECT token_hash FROM auth_tokens")]
    assert len(hashes) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), hashes
    (stored_password,) = api.db.sql("SELECT password_hash FROM users")[0]
    assert stored_password and stored_password != password

    tables = {str(t) for (t,) in api.db.sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if not api.db.is_pg else
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"users", "auth_tokens"} <= tables
    for table in tables:
        for row in api.db.sql(f'SELECT * FROM "{table}"'):
            dumped = " ".join(map(str, row))
            assert not any(secret in dumped for secret in secrets), table
