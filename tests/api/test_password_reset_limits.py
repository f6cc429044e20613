"""Password reset limits: few emails per mailbox, few requests per client, and the same
answer past the mailbox's limit."""

from __future__ import annotations

import threading
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tests.conftest import NOT_CONFIRMATION, Sink, link_in
from workspaces.app import create_app
from workspaces.settings import Settings

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"password_reset_limit_per_client_per_hour": 6,
                                       "password_reset_limit_per_account_per_hour": 2})


def test_an_account_gets_few_emails_and_a_client_few_requests(api: Api) -> None:
    api.signup("ann@example.com")
    for address in ("ann+x@example.com", "a.nn@example.com", "ann+y@example.com"):
        # Look-alikes of the account's address have no account: they use up nothing of it
        # (found by attacking: they silenced the real user's reset for as long as they went on).
        assert api.client.post("/api/auth/password-reset",
                               json={"email": address}).status_code == 202
    for _ in range(3):  # the same answer past the account's limit: nobody learns it exists
        assert api.client.post("/api/auth/password-reset",
                               json={"email": "ann@example.com"}).status_code == 202
    assert api.db.sql("SELECT count(*) FROM account_tokens "
                      "WHERE purpose = 'password_reset'") == [(1,)]  # mailed twice
    assert api.db.sql(f"SELECT count(*) FROM email_outbox WHERE {NOT_CONFIRMATION}") == [(2,)]
    refused = api.client.post("/api/auth/password-reset", json={"email": "bob@example.com"})
    api.error(refused, 429, "rate_limited")  # the client's seventh request in the hour
    assert int(refused.headers["Retry-After"]) > 0


def test_a_squatter_cannot_block_the_mailbox_owners_reset(settings: Settings,
                                                          smtp: Sink) -> None:
    """Found by attacking: someone who registered dana's address (unverified) used up the
    account's reset emails and then changed the password, which ended the links in dana's
    mailbox; dana's own request then sent nothing. Now the squatter spends only their own
    client's share, a password change leaves the links to an unverified address alive, and
    dana's request mails the live link again."""
    behind = settings.model_copy(update={"trusted_proxies": "127.0.0.1"})
    squatter_at, owner_at = {"X-Forwarded-For": "198.51.100.7"}, \
        {"X-Forwarded-For": "192.0.2.10"}
    with TestClient(create_app(behind), client=("127.0.0.1", 50000)) as client:
        signed_up = client.post("/api/auth/signup", headers=squatter_at, json={
            "email": "dana@example.com", "password": PASSWORD, "name": "Not Dana"})
        squatter = {"Authorization": f"Bearer {signed_up.json()['token']}"}
        for _ in range(4):
            assert client.post("/api/auth/password-reset", headers=squatter_at,
                               json={"email": "dana@example.com"}).status_code == 202
        assert client.post("/api/me/password", headers={**squatter, **squatter_at}, json={
            "current_password": PASSWORD, "new_password": "squatters new passphrase"}
        ).status_code == 200
        sent = _resets(smtp, 2)  # the squatter's share: two emails
        assert client.post("/api/auth/password-reset", headers=owner_at,
                           json={"email": "dana@example.com"}).status_code == 202
        first, *_, last = _resets(smtp, 3)
        assert first == last == sent[0]  # one live link, mailed again each time
        # Dana uses the link that reached her before the squatter's password change.
        assert client.post("/api/auth/password-reset/confirm", headers=owner_at, json={
            "token": first, "password": NEW_PASSWORD}).status_code == 204
        assert client.get("/api/me", headers=squatter).status_code == 401
        assert client.post("/api/auth/login", headers=owner_at, json={
            "email": "dana@example.com", "password": NEW_PASSWORD}).status_code == 200


def test_a_password_change_of_a_verified_account_still_ends_its_reset_links(
        api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    verify = link_in(smtp.confirmation_for("ann@example.com"), "verify")
    assert api.client.post("/api/auth/verify", json={"token": verify},
                           headers=ann).status_code == 200
    api.client.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    [token] = _resets(smtp, 1, to="ann@example.com")
    assert api.client.post("/api/me/password", headers=ann, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD}).status_code == 200
    api.error(api.client.post("/api/auth/password-reset/confirm",
                              json={"token": token, "password": "yet another passphrase"}),
              410, "reset_link_invalid")


def _resets(smtp: Sink, count: int, to: str = "dana@example.com") -> list[str]:
    """The tokens of the first `count` reset emails to `to`, waiting for them to arrive."""
    found: list[EmailMessage] = []
    for _ in range(600):  # a hang guard: 30 s
        found = [m for m in smtp.to(to) if m["Subject"] == "Reset your Workspaces password"]
        if len(found) >= count:
            break
        threading.Event().wait(0.05)
    assert len(found) == count, len(found)
    return [link_in(m, "reset") for m in found]
