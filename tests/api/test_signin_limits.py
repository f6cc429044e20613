"""Sign-in attempts are limited per account and per client address, across restarts."""

from __future__ import annotations

from tests.api.conftest import Api


def _login(api: Api, email: str, password: str) -> int:
    response = api.client.post("/api/auth/login", json={"email": email, "password": password})
    return int(response.status_code)


def test_guessing_one_accounts_password_is_cut_off(api: Api) -> None:
    api.signup("ann@example.com", password="the right password")
    api.client.app.state.settings.signin_limit_per_account = 3  # type: ignore[attr-defined]
    assert [_login(api, "ann@example.com", f"guess {n}") for n in range(3)] == [401] * 3
    refused = api.client.post("/api/auth/login",
                              json={"email": "ANN@example.com", "password": "the right password"})
    message = api.error(refused, 429, "rate_limited")
    assert "sign-in attempts" in message
    assert 1 <= int(refused.headers["Retry-After"]) <= 900
    counted = api.db.sql("SELECT count FROM rate_limit_counters "
                         "WHERE key = 'signin:account:ann@example.com'")
    assert counted == [(3,)]  # the failures were committed although they answered 401


def test_one_client_trying_many_accounts_is_cut_off(api: Api) -> None:
    api.client.app.state.settings.signin_limit_per_address = 5  # type: ignore[attr-defined]
    codes = [_login(api, f"user{n}@example.com", "whatever pw") for n in range(6)]
    assert codes == [401] * 5 + [429]
