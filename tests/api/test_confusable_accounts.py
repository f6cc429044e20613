# ruff: noqa: RUF001, RUF002, RUF003
"""Look-alike addresses cannot become accounts beside the real one; names cannot carry
invisible formatting characters that change how they read."""

from __future__ import annotations

import threading

import pytest

from tests.api.conftest import Api
from workspaces import security

PASSWORD = "long enough password"


def _signup(api: Api, email: str, name: str = "Someone") -> object:
    return api.client.post("/api/auth/signup",
                           json={"email": email, "password": PASSWORD, "name": name})


def test_a_fullwidth_address_is_the_ascii_one(api: Api) -> None:
    """Found by attacking: ｂｏｂ@example.com became an account beside bob@example.com."""
    api.signup("bob@example.com", password=PASSWORD)
    api.error(_signup(api, "ｂｏｂ@ｅｘａｍｐｌｅ.ｃｏｍ"), 409, "email_taken")
    signed_in = api.client.post("/api/auth/login", json={
        "email": "ｂｏｂ@example.com", "password": PASSWORD})
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["email"] == "bob@example.com"


@pytest.mark.parametrize("look_alike", [
    "bоb@example.com",  # Cyrillic о among Latin letters: mixed scripts
    "сосо@example.com",  # all Cyrillic, reads as coco
    "coco@exаmple.com",  # Cyrillic а in the domain
])
def test_look_alikes_of_existing_accounts_are_refused(api: Api, look_alike: str) -> None:
    api.signup("bob@example.com")
    api.signup("coco@example.com")
    message = api.error(_signup(api, look_alike), 422, "email_confusable")
    assert "look" in message or "alphabets" in message
    assert api.db.sql("SELECT count(*) FROM users") == [(2,)]


def test_an_all_cyrillic_address_with_no_look_alike_is_welcome(api: Api) -> None:
    api.signup("иван@example.com")
    api.signup("bob@example.com")


def test_two_racing_look_alike_sign_ups_make_one_account(api: Api) -> None:
    codes: list[int] = []
    start = threading.Barrier(2)

    def sign_up(email: str) -> None:
        start.wait()
        codes.append(int(_signup(api, email).status_code))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=sign_up, args=(email,))
               for email in ("coco@example.com", "сосо@example.com")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes) == [201, 422], codes
    assert api.db.sql("SELECT count(*) FROM users") == [(1,)]


def test_inviting_a_look_alike_of_an_account_is_refused(api: Api) -> None:
    owner = api.signup("coco@example.com")
    slug = api.workspace(owner)
    refused = api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "сосо@example.com"}, headers=owner)
    api.error(refused, 422, "email_confusable")
    assert api.db.sql("SELECT count(*) FROM workspace_invites") == [(0,)]


def test_joining_through_a_look_alike_invite_is_refused_before_any_hash(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by attacking the fix: the invite was made before the look-alike account existed,
    and every join attempt cost an Argon2 hash before the refusal, without limit."""
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "сосо@example.com")
    api.signup("coco@example.com")
    hashes: list[str] = []
    real = security.hash_password

    def counted(password: str) -> str:
        hashes.append(password)
        return real(password)

    monkeypatch.setattr(security, "hash_password", counted)
    for _ in range(3):
        refused = api.client.post(f"/api/invites/{token}/accept",
                                  json={"name": "Mallory", "password": PASSWORD})
        api.error(refused, 422, "email_confusable")
    assert hashes == []
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "pending"


@pytest.mark.parametrize("control", ["\u202e", "\u2066", "\u200f", "\u200b", "\ufeff"])
def test_names_refuse_invisible_formatting(api: Api, control: str) -> None:
    """Found by attacking: U+202E in a name reversed how it read in lists and email subjects."""
    api.error(_signup(api, "eve@example.com", f"Eve{control}nimda"), 422, "invalid_name")
    owner = api.signup("ann@example.com")
    api.error(api.client.post("/api/workspaces", json={"name": f"Acme{control}"},
                              headers=owner), 422, "invalid_name")


@pytest.mark.parametrize("blank", ["\u3164", "\u200d\u200d", "\u2800 \u034f", "\u115f\u1160"])
def test_names_that_would_show_as_nothing_are_refused(api: Api, blank: str) -> None:
    api.error(_signup(api, "eve@example.com", blank), 422, "invalid_name")


def test_names_keep_joiners_that_scripts_and_emoji_need(api: Api) -> None:
    api.signup("ali@example.com", name="علی\u200cرضا")
    owner = api.signup("fam@example.com")
    api.workspace(owner, "Family \U0001f468\u200d\U0001f469\u200d\U0001f467")
