"""The profile through the API (and the account page's forms), on SQLite and PostgreSQL, with
emails delivered over real SMTP: name, password (the current one asked and counted like a
sign-in, other sessions signed out), address change by a link to the new address, sessions,
the security trail, and races."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.api.conftest import Api
from tests.conftest import Cli, Sink, at_once, link_in
from workspaces.app import create_app
from workspaces.db import create_sync_engine, parse_url
from workspaces.security import hash_token
from workspaces.settings import Settings

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
CHANGED = "Your Workspaces password was changed"
CONFIRM = "Confirm your new Workspaces address"
MOVED = "The address of your Workspaces account was changed"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for the races below: sign-ins that lose to a password change fail and count, and
    each trial of the address race mails a new link."""
    return settings.model_copy(update={"signin_limit_per_account": 1000,
                                       "signin_limit_per_address": 1000,
                                       "signin_limit_per_account_all_clients": 1000,
                                       "email_change_limit_per_account_per_hour": 100,
                                       "email_change_limit_per_recipient_per_day": 100,
                                       "password_hash_concurrency": 4})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(api: Api, email: str, password: str = PASSWORD) -> Any:
    return api.client.post("/api/auth/login", json={"email": email, "password": password})


def mails(smtp: Sink, to: str, subject: str, count: int = 1) -> list[EmailMessage]:
    """The first `count` emails to `to` with this subject (other emails, such as a sign-up's
    verification, are left out: no total is assumed)."""
    found: list[EmailMessage] = []
    for _ in range(600):  # a hang guard: 30 s
        found = [m for m in smtp.to(to) if m["Subject"] == subject]
        if len(found) >= count:
            return found[:count]
        threading.Event().wait(0.05)
    raise AssertionError(f"{len(found)} of {count} emails {subject!r} to {to}: "
                         f"{[m['Subject'] for m in smtp.to(to)]}")


def events(api: Api, headers: dict[str, str], limit: int = 20) -> list[dict[str, Any]]:
    response = api.client.get(f"/api/me/events?limit={limit}", headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def ask_email_change(api: Api, headers: dict[str, str], email: str,
                     password: str = PASSWORD) -> Any:
    return api.client.post("/api/me/email", json={"email": email, "current_password": password},
                           headers=headers)


def change_link(api: Api, smtp: Sink, headers: dict[str, str], email: str,
                count: int = 1) -> str:
    """Ask for a change to `email`; the token of the link that arrives there."""
    asked = ask_email_change(api, headers, email)
    assert asked.status_code == 202, asked.text
    return link_in(mails(smtp, email, CONFIRM, count)[count - 1], "email")


def test_a_name_change(api: Api) -> None:
    ann = api.signup("ann@example.com", name="Ann")
    changed = api.client.patch("/api/me", json={"name": "  Ann   Smith "}, headers=ann)
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Ann Smith"
    assert api.client.get("/api/me", headers=ann).json()["name"] == "Ann Smith"
    api.error(api.client.patch("/api/me", json={"name": "  "}, headers=ann), 422,
              "invalid_name")
    api.error(api.client.patch("/api/me", json={"name": "Eve\u202enimda"}, headers=ann), 422,
              "invalid_name")
    api.error(api.client.patch("/api/me", json={"name": "Nobody"}), 401, "not_authenticated")
    assert [e["action"] for e in events(api, ann)] == ["name_changed", "signed_up"]
    assert events(api, ann)[0]["words"] == "Name changed"


def test_a_password_change_signs_out_every_other_session_and_sends_a_notice(
        api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    others = [bearer(login(api, "ann@example.com").json()["token"]) for _ in range(2)]
    bob = api.signup("bob@example.com")

    wrong = api.client.post("/api/me/password", headers=ann, json={
        "current_password": "not my password", "new_password": NEW_PASSWORD})
    api.error(wrong, 403, "wrong_password")
    assert wrong.json()["error"]["field"] == "current_password"
    short = api.client.post("/api/me/password", headers=ann, json={
        "current_password": PASSWORD, "new_password": "short"})
    api.error(short, 422, "invalid_password")
    assert short.json()["error"]["field"] == "new_password"
    api.error(api.client.post("/api/me/password", json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD}), 401, "not_authenticated")
    for headers in others:  # nothing changed yet
        assert api.client.get("/api/me", headers=headers).status_code == 200

    done = api.client.post("/api/me/password", headers=ann, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert done.status_code == 200, done.text
    assert done.json() == {"signed_out": 2}
    assert api.client.get("/api/me", headers=ann).status_code == 200  # the caller's stays
    for headers in others:
        api.error(api.client.get("/api/me", headers=headers), 401, "invalid_token")
    assert api.client.get("/api/me", headers=bob).status_code == 200  # another account's too
    api.error(login(api, "ann@example.com"), 401, "invalid_credentials")
    assert login(api, "ann@example.com", NEW_PASSWORD).status_code == 200

    [notice] = mails(smtp, "ann@example.com", CHANGED)
    body = notice.get_body(("plain",))
    assert body is not None
    words = " ".join(body.get_content().split())
    assert "every other session and API token of the account was signed out" in words
    [entry, *_] = events(api, ann)
    assert entry["action"] == "password_changed" and entry["detail"] == {"signed_out": 2}


def test_a_wrong_current_password_counts_like_a_failed_sign_in(api: Api,
                                                              settings: Settings) -> None:
    """One budget of guesses for sign-in and the profile: three wrong current passwords and
    the fourth attempt, right or not, is 429, and so is a sign-in from the same client."""
    strict = settings.model_copy(update={"signin_limit_per_account": 3})
    with TestClient(create_app(strict)) as client:
        signed_up = client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"})
        ann = bearer(signed_up.json()["token"])
        for _ in range(3):
            api.error(client.post("/api/me/password", headers=ann, json={
                "current_password": "a guess at it", "new_password": NEW_PASSWORD}),
                403, "wrong_password")
        limited = client.post("/api/me/password", headers=ann, json={
            "current_password": PASSWORD, "new_password": NEW_PASSWORD})
        api.error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        api.error(client.post("/api/me/email", headers=ann, json={
            "email": "new@example.com", "current_password": PASSWORD}), 429, "rate_limited")
        api.error(client.post("/api/auth/login", json={
            "email": "ann@example.com", "password": PASSWORD}), 429, "rate_limited")
    assert login(api, "ann@example.com", NEW_PASSWORD).status_code == 401  # never changed


def test_a_right_current_password_is_not_counted(api: Api, settings: Settings) -> None:
    strict = settings.model_copy(update={"signin_limit_per_account": 2})
    with TestClient(create_app(strict)) as client:
        ann = bearer(client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"])
        passwords = [PASSWORD, NEW_PASSWORD, "a third passphrase", "a fourth passphrase"]
        for old, new in itertools.pairwise(passwords):
            changed = client.post("/api/me/password", headers=ann, json={
                "current_password": old, "new_password": new})
            assert changed.status_code == 200, changed.text


def test_an_address_change_takes_effect_through_the_link(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    asked = ask_email_change(api, ann, "Ann.New@Example.com")
    assert asked.status_code == 202, asked.text
    assert asked.json()["email"] == "ann.new@example.com"
    [message] = mails(smtp, "ann.new@example.com", CONFIRM)
    token = link_in(message, "email")
    body = message.get_body(("plain",))
    assert body is not None and "ann@example.com" in body.get_content()

    # Stored as its hash only, with the new address, for 24 hours; the raw token is nowhere.
    [(purpose, email, created, expires)] = api.db.sql(
        "SELECT purpose, email, created_at, expires_at FROM account_tokens "
        f"WHERE token_hash = '{hash_token(token)}'")
    assert (purpose, email) == ("change_email", "ann.new@example.com")
    assert _at(expires) - _at(created) == timedelta(hours=24)
    for table in ("account_tokens", "email_outbox", "account_events", "users"):
        rows = api.db.sql(f"SELECT * FROM {table}")
        assert rows and token not in repr(rows), table
    assert api.client.get("/api/me", headers=ann).json()["email"] == "ann@example.com"
    assert events(api, ann)[0]["action"] == "email_change_requested"

    confirmed = confirm(api, token, ann)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "ann.new@example.com"
    assert confirmed.json()["email_verified_at"] is not None
    me = api.client.get("/api/me", headers=ann).json()  # the session goes on
    assert me["email"] == "ann.new@example.com" and me["email_verified_at"]
    api.error(login(api, "ann@example.com"), 401, "invalid_credentials")
    assert login(api, "ann.new@example.com").status_code == 200
    [notice] = mails(smtp, "ann@example.com", MOVED)
    body = notice.get_body(("plain",))
    assert body is not None
    assert "from ann@example.com to ann.new@example.com" in " ".join(body.get_content().split())
    entry = events(api, ann)[0]
    assert entry["action"] == "email_changed"
    assert entry["detail"] == {"from": "ann@example.com", "to": "ann.new@example.com"}
    api.error(confirm(api, token, ann), 410,
              "email_link_invalid")
    # The old address is free again, for someone else.
    assert api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": PASSWORD, "name": "Other"}).status_code == 201


def confirm(api: Api, token: str, headers: dict[str, str]) -> Any:
    """Use an address-change link, signed in as `headers`' account."""
    return api.client.post("/api/auth/email/confirm", json={"token": token}, headers=headers)


def _at(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_a_newer_link_ends_the_older_and_links_expire(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    first = change_link(api, smtp, ann, "one@example.com")
    second = change_link(api, smtp, ann, "two@example.com")
    api.error(confirm(api, first, ann), 410,
              "email_link_invalid")
    api.db.sql("UPDATE account_tokens SET expires_at = created_at")  # a day later
    api.error(confirm(api, second, ann), 410,
              "email_link_invalid")
    api.error(confirm(api, "made-up", ann), 410,
              "email_link_invalid")
    assert api.client.get("/api/me", headers=ann).json()["email"] == "ann@example.com"


def test_an_address_change_ends_the_links_mailed_to_the_old_address(api: Api,
                                                                    smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    api.client.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    reset = link_in(next(m for m in mails(smtp, "ann@example.com",
                                          "Reset your Workspaces password")), "reset")
    verify = link_in(smtp.confirmation_for("ann@example.com"), "verify")
    token = change_link(api, smtp, ann, "new@example.com")
    assert confirm(api, token, ann).status_code == 200
    api.error(api.client.post("/api/auth/password-reset/confirm",
                              json={"token": reset, "password": NEW_PASSWORD}),
              410, "reset_link_invalid")
    api.error(api.client.post("/api/auth/verify", json={"token": verify}, headers=ann), 410,
              "verify_link_invalid")
    assert login(api, "new@example.com").status_code == 200  # the password stayed


def test_addresses_that_cannot_be_had_are_refused(api: Api, smtp: Sink) -> None:
    api.signup("bob@example.com")
    api.signup("coco@example.com")
    ann = api.signup("ann@example.com")
    api.error(ask_email_change(api, ann, "BOB@example.com"), 409, "email_taken")
    coco = "\u0441\u043e\u0441\u043e@example.com"  # Cyrillic letters that read as coco
    api.error(ask_email_change(api, ann, coco), 422, "email_confusable")
    api.error(ask_email_change(api, ann, "ann@example.com"), 422, "email_unchanged")
    api.error(ask_email_change(api, ann, "not an address"), 422, "invalid_email")
    # The password comes first: a wrong one learns nothing about the address.
    api.error(ask_email_change(api, ann, "bob@example.com", "a guess"), 403, "wrong_password")
    api.error(ask_email_change(api, ann, "free@example.com", "a guess"), 403, "wrong_password")
    api.error(api.client.post("/api/me/email", json={
        "email": "free@example.com", "current_password": PASSWORD}), 401, "not_authenticated")
    assert api.db.sql("SELECT count(*) FROM account_tokens "
                      "WHERE purpose = 'change_email'") == [(0,)]
    assert api.db.sql("SELECT count(*) FROM email_outbox WHERE to_address IN "
                      "('free@example.com', 'bob@example.com') "
                      f"AND subject = '{CONFIRM}'") == [(0,)]


def test_an_address_taken_before_the_link_is_opened_is_refused(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    token = change_link(api, smtp, ann, "carol@example.com")
    api.signup("carol@example.com")
    api.error(confirm(api, token, ann), 409,
              "email_taken")
    assert api.client.get("/api/me", headers=ann).json()["email"] == "ann@example.com"
    assert events(api, ann)[0]["action"] == "email_change_requested"


def test_address_change_emails_are_limited_per_account(api: Api, settings: Settings,
                                                       smtp: Sink) -> None:
    strict = settings.model_copy(update={"email_change_limit_per_account_per_hour": 2})
    with TestClient(create_app(strict)) as client:
        ann = bearer(client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"])
        codes = [client.post("/api/me/email", headers=ann, json={
            "email": f"new{n}@example.com", "current_password": PASSWORD}).status_code
            for n in range(3)]
        assert codes == [202, 202, 429]
        # Over the limit is not a wrong password: the budget of guesses is untouched.
        assert client.post("/api/me/password", headers=ann, json={
            "current_password": PASSWORD, "new_password": NEW_PASSWORD}).status_code == 200


def test_refused_requests_count_and_a_mailbox_gets_few_change_emails(api: Api,
                                                                    settings: Settings) -> None:
    """A 409 says an address has an account: it is counted like a sign-up attempt, so the
    profile is no cheaper way to harvest addresses. And accounts made to mail one address
    cannot flood it (`+tags` and dots count as the same mailbox)."""
    strict = settings.model_copy(update={
        "email_change_limit_per_account_per_hour": 2,
        "email_change_limit_per_recipient_per_day": 2,
        "email_change_limit_per_recipient_all_accounts_per_day": 2})
    with TestClient(create_app(strict)) as client:
        tokens = [client.post("/api/auth/signup", json={
            "email": f"{who}@example.com", "password": PASSWORD, "name": who}).json()["token"]
            for who in ("ann", "bob", "carl", "dora")]
        ann, carl, dora = bearer(tokens[0]), bearer(tokens[2]), bearer(tokens[3])

        def ask(headers: dict[str, str], email: str) -> int:
            return int(client.post("/api/me/email", headers=headers, json={
                "email": email, "current_password": PASSWORD}).status_code)

        assert [ask(ann, "bob@example.com") for _ in range(2)] == [409, 409]
        assert [ask(ann, "bob@example.com"), ask(ann, "free@example.com")] == [429, 429]
        assert [ask(carl, "victim@example.com"), ask(dora, "v.ictim+x@example.com"),
                ask(dora, "victim@example.com")] == [202, 202, 429]


def test_a_stranger_cannot_spend_an_addresss_change_emails_for_its_owner(
        api: Api, settings: Settings) -> None:
    """Found by attacking: an account asking to move to an address a few times used up that
    mailbox's daily budget, and the person who owns it could not move their account to it."""
    strict = settings.model_copy(update={
        "email_change_limit_per_recipient_per_day": 2,
        "email_change_limit_per_recipient_all_accounts_per_day": 2})
    with TestClient(create_app(strict)) as client:
        mallory, dana, carl = (bearer(client.post("/api/auth/signup", json={
            "email": f"{who}@example.com", "password": PASSWORD, "name": who}).json()["token"])
            for who in ("mallory", "dana", "carl"))

        def ask(headers: dict[str, str]) -> int:
            return int(client.post("/api/me/email", headers=headers, json={
                "email": "dana@example.org", "current_password": PASSWORD}).status_code)

        assert [ask(mallory) for _ in range(3)] == [202, 202, 429]  # the stranger's own budget
        assert ask(dana) == 202  # the owner's is untouched
        # Mallory's requests counted once in the ceiling of two (her link stayed live): the
        # owner's fitted, a third account's does not.
        assert ask(carl) == 429


def test_an_address_change_is_confirmed_by_the_account_signed_in(api: Api,
                                                                 smtp: Sink) -> None:
    """Whoever reads the new mailbox (a mistyped address's owner) cannot take the account:
    the link works only for the account that asked, signed in."""
    ann = api.signup("ann@example.com")
    mallory = api.signup("mallory@example.com")
    token = change_link(api, smtp, ann, "anne@exampel.com")
    api.error(api.client.post("/api/auth/email/confirm", json={"token": token}), 401,
              "not_authenticated")
    api.error(confirm(api, token, mallory), 403, "link_for_another_account")
    page = api.client.get(f"/email/{token}")
    assert page.status_code == 200 and "Sign in as ann@example.com" in page.text
    assert "Use anne@exampel.com" not in page.text
    assert api.client.get("/api/me", headers=ann).json()["email"] == "ann@example.com"
    # Ann notices the typo and cancels: the link is dead, for her too.
    assert api.client.delete("/api/me/email", headers=ann).status_code == 204
    api.error(confirm(api, token, ann), 410, "email_link_invalid")
    api.error(api.client.delete("/api/me/email"), 401, "not_authenticated")


def test_a_reset_or_a_password_change_ends_pending_address_changes(api: Api,
                                                                   smtp: Sink) -> None:
    """Found by attacking: a squatter (or a thief of the password) asked to move the account
    to their own address and kept the link; the real owner's reset, or password change, must
    end it."""
    squatter = api.signup("victim@example.com")
    planted = change_link(api, smtp, squatter, "evil@example.net")
    api.client.post("/api/auth/password-reset", json={"email": "victim@example.com"})
    reset = link_in(mails(smtp, "victim@example.com", "Reset your Workspaces password")[0],
                    "reset")
    assert api.client.post("/api/auth/password-reset/confirm", json={
        "token": reset, "password": NEW_PASSWORD}).status_code == 204
    victim = bearer(login(api, "victim@example.com", NEW_PASSWORD).json()["token"])
    api.error(confirm(api, planted, victim), 410, "email_link_invalid")

    thief = bearer(login(api, "victim@example.com", NEW_PASSWORD).json()["token"])
    assert ask_email_change(api, thief, "thief@example.net", NEW_PASSWORD).status_code == 202
    stolen = link_in(mails(smtp, "thief@example.net", CONFIRM)[0], "email")
    assert api.client.post("/api/me/password", headers=victim, json={
        "current_password": NEW_PASSWORD, "new_password": "yet another passphrase"}
    ).status_code == 200
    api.error(confirm(api, stolen, victim), 410, "email_link_invalid")
    assert api.client.get("/api/me", headers=victim).json()["email"] == "victim@example.com"


def test_sessions_are_listed_without_their_tokens_and_signed_out_one_by_one(api: Api) -> None:
    ann = api.signup("ann@example.com")
    second = login(api, "ann@example.com").json()["token"]
    gone = login(api, "ann@example.com").json()["token"]
    bob = api.signup("bob@example.com")
    api.client.post("/api/auth/logout", headers=bearer(gone))
    listed = api.client.get("/api/me/sessions", headers=ann)
    assert listed.status_code == 200, listed.text
    sessions = listed.json()
    assert len(sessions) == 2  # the signed-out one is not listed
    assert all(set(s) == {"id", "kind", "created_at", "expires_at", "current", "device",
                          "address", "last_used_at"} for s in sessions)
    assert [s["current"] for s in sessions] == [True, False]  # the caller's first
    token = ann["Authorization"].split()[1]
    for secret in (token, second, hash_token(token), hash_token(second)):
        assert secret not in listed.text
    other = next(s for s in sessions if not s["current"])
    assert other["kind"] == "api"

    bobs = api.client.get("/api/me/sessions", headers=bob).json()
    api.error(api.client.delete(f"/api/me/sessions/{bobs[0]['id']}", headers=ann), 404,
              "session_not_found")
    assert api.client.get("/api/me", headers=bob).status_code == 200
    api.error(api.client.delete(f"/api/me/sessions/{uuid.uuid4()}", headers=ann), 404,
              "session_not_found")
    assert api.client.delete(f"/api/me/sessions/{other['id']}",
                             headers=ann).status_code == 204
    api.error(api.client.get("/api/me", headers=bearer(second)), 401, "invalid_token")
    assert api.client.get("/api/me", headers=ann).status_code == 200
    api.error(api.client.delete(f"/api/me/sessions/{other['id']}", headers=ann), 404,
              "session_not_found")
    assert [s["id"] for s in api.client.get("/api/me/sessions", headers=ann).json()] == [
        next(s["id"] for s in sessions if s["current"])]
    entry = events(api, ann)[0]
    assert entry["action"] == "session_revoked" and entry["detail"] == {"kind": "api"}
    api.error(api.client.get("/api/me/sessions"), 401, "not_authenticated")
    api.error(api.client.delete(f"/api/me/sessions/{other['id']}"), 401, "not_authenticated")


FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def _age(api: Api, token: str) -> None:
    """Make a session look signed in and last used an hour ago."""
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")
    api.db.sql(f"UPDATE auth_tokens SET created_at = '{past}', last_used_at = '{past}' "
               f"WHERE token_hash = '{hash_token(token)}'")


def _last_use(api: Api, token: str) -> object:
    ((stored,),) = api.db.sql("SELECT last_used_at FROM auth_tokens "
                              f"WHERE token_hash = '{hash_token(token)}'")
    return stored


def test_sessions_tell_their_device_address_and_last_use_apart(settings: Settings) -> None:
    behind = settings.model_copy(update={"trusted_proxies": "127.0.0.1"})
    with TestClient(create_app(behind), client=("127.0.0.1", 50000)) as client:
        api = Api(client, Cli(settings.database_url, {}))
        # The address is the one the limits count: right of the trusted proxy, not what the
        # client wrote further left.
        ann = api.client.post("/api/auth/signup", headers={
            "User-Agent": FIREFOX, "X-Forwarded-For": "198.51.100.7, 192.0.2.1"}, json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"]
        phone = api.client.post("/api/auth/login", headers={
            "User-Agent": IPHONE, "X-Forwarded-For": "203.0.113.5"}, json={
            "email": "ann@example.com", "password": PASSWORD}).json()["token"]
        script = api.client.post("/api/auth/login", headers={"User-Agent": "backup-job/2.1"},
                                 json={"email": "ann@example.com", "password": PASSWORD})
        assert script.status_code == 200, script.text
        slug = api.workspace(bearer(ann))
        listed = api.client.get("/api/me/sessions", headers=bearer(ann)).json()
        assert [(s["device"], s["address"]) for s in listed] == [
            ("Firefox 133 on Windows 10", "192.0.2.1"),  # the caller's first, then the newest
            ("backup-job/2.1", "127.0.0.1"),  # an agent the parser does not know: as sent
            ("Mobile Safari 17 on iPhone (iOS 17)", "203.0.113.5")]
        assert all(s["last_used_at"] == s["created_at"] for s in listed)  # signing in is a use

        # Used an hour after signing in (here through a workspace): "last used" moves to now,
        # "signed in" stays; another use within the step writes nothing.
        for path in (f"/api/workspaces/{slug}/members", "/api/me"):
            _age(api, phone)
            before = datetime.now(UTC) - timedelta(seconds=1)
            assert api.client.get(path, headers=bearer(phone)).status_code == 200
            (used,) = [s for s in api.client.get("/api/me/sessions", headers=bearer(ann)).json()
                       if s["device"].startswith("Mobile Safari")]
            assert datetime.fromisoformat(used["created_at"]) < before - timedelta(minutes=30)
            assert datetime.fromisoformat(used["last_used_at"]) >= before, path
            noted = _last_use(api, phone)
            assert api.client.get(path, headers=bearer(phone)).status_code == 200
            assert _last_use(api, phone) == noted


def test_noting_a_use_never_waits_for_a_session_another_transaction_holds(api: Api) -> None:
    """A request whose session row is locked elsewhere (its sign-out, a password change ending
    it) answers without noting the use, instead of waiting on the lock (or deadlocking)."""
    if not api.db.is_pg:
        pytest.skip("SQLite has no row locks: one writer at a time")
    token = api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"]
    _age(api, token)
    noted = _last_use(api, token)
    engine = create_sync_engine(parse_url(api.db.url))
    answered: list[int] = []
    try:
        with engine.begin() as holder:
            holder.execute(text("SELECT id FROM auth_tokens WHERE token_hash = :h FOR UPDATE"),
                           {"h": hash_token(token)})
            request = threading.Thread(target=lambda: answered.append(
                api.client.get("/api/me", headers=bearer(token)).status_code))
            request.start()
            request.join(timeout=60)  # a hang guard: it waits for no one
            assert answered == [200], "the request waited for the lock"
    finally:
        engine.dispose()
    assert _last_use(api, token) == noted  # skipped this time; the next use notes it
    assert api.client.get("/api/me", headers=bearer(token)).status_code == 200
    assert _last_use(api, token) != noted


def test_a_write_notes_no_use_so_it_keeps_no_token_row_locked(api: Api) -> None:
    """A write request's transaction would hold its token row to its end, where a password
    change (the user's row, then every token row) could meet it in a circle: only reads
    note a use."""
    token = api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"]
    _age(api, token)
    noted = _last_use(api, token)
    assert api.client.patch("/api/me", json={"name": "Ann B"},
                            headers=bearer(token)).status_code == 200
    assert _last_use(api, token) == noted
    assert api.client.get("/api/me", headers=bearer(token)).status_code == 200
    assert _last_use(api, token) != noted


def test_expired_sessions_are_not_listed(api: Api) -> None:
    ann = api.signup("ann@example.com")
    login(api, "ann@example.com")
    api.db.sql("UPDATE auth_tokens SET expires_at = created_at WHERE id NOT IN "
               "(SELECT id FROM auth_tokens ORDER BY created_at LIMIT 1)")
    assert len(api.client.get("/api/me/sessions", headers=ann).json()) == 1


def test_the_security_trail_is_newest_first_and_limited(api: Api) -> None:
    ann = api.signup("ann@example.com")
    bob = api.signup("bob@example.com")
    for name in ("One", "Two", "Three"):
        api.client.patch("/api/me", json={"name": name}, headers=ann)
    trail = events(api, ann)
    assert [e["action"] for e in trail] == ["name_changed"] * 3 + ["signed_up"]
    assert [e["created_at"] for e in trail] == sorted((e["created_at"] for e in trail),
                                                      reverse=True)
    assert len(events(api, ann, limit=2)) == 2
    assert [e["action"] for e in events(api, bob)] == ["signed_up"]  # only one's own
    for limit in (0, 101):
        api.error(api.client.get(f"/api/me/events?limit={limit}", headers=ann), 422,
                  "invalid_input")
    api.error(api.client.get("/api/me/events"), 401, "not_authenticated")


def test_two_confirms_of_one_link_at_once_one_wins(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    for trial in range(3):
        address = f"ann{trial}@example.com"
        token = change_link(api, smtp, ann, address)
        results = at_once(*(lambda t=token: api.client.post("/api/auth/email/confirm",
                                                           json={"token": t}, headers=ann)
                            for _ in range(2)))
        assert sorted(r.status_code for r in results) == [200, 410], [r.text for r in results]
        assert api.client.get("/api/me", headers=ann).json()["email"] == address
        changed = [e for e in events(api, ann, 100) if e["action"] == "email_changed"]
        assert len(changed) == trial + 1  # one event per change, none for the loser
        old = "ann@example.com" if trial == 0 else f"ann{trial - 1}@example.com"
        assert len(mails(smtp, old, MOVED)) == 1


def test_no_session_for_the_old_password_survives_a_change(api: Api) -> None:
    """Sign-ins with the old password racing a password change: whichever order, none keeps a
    session, and the changer's own does. Trials go on until sign-ins that raced the change
    were let in (then revoked), so the test saw the race it is about."""
    ann = api.signup("ann@example.com")
    password, raced = PASSWORD, 0
    for trial in range(12):
        new = f"new password number {trial}"
        results = at_once(
            lambda o=password, n=new: api.client.post("/api/me/password", headers=ann, json={
                "current_password": o, "new_password": n}),
            *(lambda p=password: login(api, "ann@example.com", p) for _ in range(3)))
        assert results[0].status_code == 200, results[0].text
        for signed_in in results[1:]:
            assert signed_in.status_code in (200, 401), signed_in.text
            if signed_in.status_code == 200:
                raced += 1
                api.error(api.client.get("/api/me", headers=bearer(signed_in.json()["token"])),
                          401, "invalid_token")
        assert api.client.get("/api/me", headers=ann).status_code == 200
        password = new
        if raced >= 3:
            break
    assert raced, "no sign-in got in during a change: the race was not exercised"


def test_two_password_changes_at_once_one_wins(api: Api) -> None:
    """Two changes from the same current password at once (one token: the check that its
    session is still live cannot tell them apart): the one that commits second finds the
    stored hash changed since its password was checked, and is refused."""
    ann = api.signup("ann@example.com")
    password = PASSWORD
    for trial in range(3):
        news = (f"first new password {trial}", f"second new password {trial}")
        results = at_once(*(lambda n=n, o=password: api.client.post(
            "/api/me/password", headers=ann, json={"current_password": o, "new_password": n})
            for n in news))
        assert sorted(r.status_code for r in results) == [200, 403], [r.text for r in results]
        [winner] = [n for n, r in zip(news, results, strict=True) if r.status_code == 200]
        assert login(api, "ann@example.com", winner).status_code == 200
        password = winner


# The account page's forms (the browser test walks them too; these check the answers).

@pytest.fixture
def browser_ann(api: Api) -> Iterator[str]:
    """Ann signed in through the sign-in page; the CSRF token of her session."""
    api.signup("ann@example.com", name="Ann")
    form = api.client.get("/signin").text
    assert api.client.post("/signin", data={"csrf_token": _csrf(form), "email": "ann@example.com",
                                            "password": PASSWORD}).status_code == 200
    yield _csrf(api.client.get("/account").text)


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_the_account_page_asks_for_a_session_and_is_linked_from_the_header(api: Api) -> None:
    away = api.client.get("/account", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/signin?next=/account"
    api.signup("ann@example.com")
    form = api.client.get("/signin").text
    home = api.client.post("/signin", data={"csrf_token": _csrf(form),
                                            "email": "ann@example.com", "password": PASSWORD})
    assert '<a class="who" href="/account"' in home.text
    page = api.client.get("/account").text
    for heading in ("Name", "Password", "Email address", "Sessions",
                    "Recent security activity", "Delete account"):
        assert f">{heading}</h2>" in page
    assert "this browser" in page and "not verified" in page and "Account created" in page


def test_refused_forms_keep_their_input_and_successes_redirect(api: Api, smtp: Sink,
                                                               browser_ann: str) -> None:
    csrf = browser_ann
    refused = api.client.post("/account/name", data={"csrf_token": csrf, "name": "\u202e"})
    assert refused.status_code == 422 and "invisible formatting" in refused.text
    done = api.client.post("/account/name", data={"csrf_token": csrf, "name": "Ann B"},
                           follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/account"

    wrong = api.client.post("/account/password", data={
        "csrf_token": csrf, "current_password": "nope", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and "The current password is wrong." in wrong.text
    assert 'id="current_password-error"' in wrong.text

    api.signup("bob@example.com")
    taken = api.client.post("/account/email", data={
        "csrf_token": csrf, "email": "bob@example.com", "email_password": PASSWORD})
    assert taken.status_code == 409 and 'value="bob@example.com"' in taken.text
    assert 'id="email-error"' in taken.text
    wrong = api.client.post("/account/email", data={
        "csrf_token": csrf, "email": "free@example.com", "email_password": "nope"})
    assert wrong.status_code == 403 and 'id="email_password-error"' in wrong.text
    assert 'value="free@example.com"' in wrong.text

    forged = api.client.post("/account/name", data={"csrf_token": "forged", "name": "X"})
    assert forged.status_code == 403
    assert "Ann B" in api.client.get("/account").text


def test_the_link_page_changes_nothing_until_its_button_is_pressed(api: Api, smtp: Sink,
                                                                   browser_ann: str) -> None:
    api.client.post("/account/email", data={"csrf_token": browser_ann,
                                            "email": "new@example.com",
                                            "email_password": PASSWORD})
    token = link_in(mails(smtp, "new@example.com", CONFIRM)[0], "email")
    for _ in range(2):
        page = api.client.get(f"/email/{token}")
        assert page.status_code == 200 and "new@example.com" in page.text
        assert page.headers["cache-control"] == "no-store"
    assert "ann@example.com" in api.client.get("/account").text.split("<main>", 1)[1]
    done = api.client.post(f"/email/{token}", data={"csrf_token": _csrf(page.text)},
                           follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/account"
    assert "<strong>new@example.com</strong>" in api.client.get("/account").text
    dead = api.client.post(f"/email/{token}", data={"csrf_token": _csrf(page.text)})
    assert dead.status_code == 410 and "This link does not work" in dead.text


def test_the_only_owner_cannot_delete_the_account_from_the_page(api: Api,
                                                                browser_ann: str) -> None:
    bearer_ann = bearer(login(api, "ann@example.com").json()["token"])
    api.workspace(bearer_ann, "Acme")
    asked = api.client.post("/account/delete", data={"csrf_token": browser_ann})
    assert asked.status_code == 200 and "Delete your account?" in asked.text
    assert api.client.get("/api/me", headers=bearer_ann).status_code == 200  # not yet
    refused = api.client.post("/account/delete", data={"csrf_token": browser_ann,
                                                       "confirmed": "yes"})
    assert refused.url.path == "/account"
    assert "You are the only owner of acme" in refused.text
    assert api.client.get("/api/me", headers=bearer_ann).status_code == 200
    slug = "acme"
    assert api.client.delete(f"/api/workspaces/{slug}", headers=bearer_ann).status_code == 204
    done = api.client.post("/account/delete", data={"csrf_token": browser_ann,
                                                    "confirmed": "yes"})
    assert "The account ann@example.com was deleted." in done.text
    assert 'href="/account"' not in done.text  # signed out
    assert api.db.sql("SELECT count(*) FROM users WHERE email = 'ann@example.com'") == [(0,)]
