"""Argon2 (about 0.3 s of a core) runs in a worker thread, never on the event loop, and never
while a transaction is open: on SQLite that held the write lock and stalled every request."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.api.conftest import Api
from workspaces import security
from workspaces.settings import Settings


def _database_is_free(url: str) -> bool:
    """No transaction of the application is open (SQLite: another writer can start one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        probe = sqlite3.connect(str(parsed.database), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:  # database is locked
            return False
        finally:
            probe.close()
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid() AND "
                           "xact_start IS NOT NULL").fetchone()
    return row is not None and row[0] == 0


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The email loop wakes only when a commit queued mail: its polls (every 0.2 s in the
    other tests) are transactions of their own, which the probe above cannot tell apart."""
    return settings.model_copy(update={"email_poll_seconds": 3600.0})


def _quiet(api: Api, deadline: float) -> None:
    """No background transaction for a while: the start-up sweep and email pass are over, and
    with polling off the loops wait for an hour or a commit that queued mail."""
    quiet = 0
    while quiet < 5:
        assert time.monotonic() < deadline, "the background loops did not go quiet"
        quiet = quiet + 1 if _database_is_free(api.db.url) else 0
        time.sleep(0.02)


def _email_loop_idle(api: Api) -> None:
    """The queued emails sent (an invite, a sign-up's confirmation link), and the loop's last
    pass (which finds nothing) over."""
    deadline = time.monotonic() + 15
    while api.db.sql("SELECT count(*) FROM email_outbox WHERE status = 'pending'") != [(0,)]:
        assert time.monotonic() < deadline, "the queued emails were not delivered"
        time.sleep(0.05)
    _quiet(api, deadline)


@pytest.fixture
def observed(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, bool]]:
    """Each real hash or verification, with where it ran: (what, on the loop, database free)."""
    seen: list[tuple[str, bool, bool]] = []
    hash_password, verify_password = security.hash_password, security.verify_password

    def hashing(password: str) -> str:
        seen.append(("hash", _on_event_loop(), _database_is_free(api.db.url)))
        return hash_password(password)

    def verifying(stored: str | None, password: str) -> bool:
        seen.append(("verify", _on_event_loop(), _database_is_free(api.db.url)))
        return verify_password(stored, password)

    monkeypatch.setattr(security, "hash_password", hashing)
    monkeypatch.setattr(security, "verify_password", verifying)
    return seen


def test_sign_up_sign_in_and_join_hash_off_the_loop_with_no_transaction(
        api: Api, observed: list[tuple[str, bool, bool]]) -> None:
    _quiet(api, time.monotonic() + 15)  # the housekeeping sweep and first email pass at start
    owner = api.signup("ann@example.com")
    _email_loop_idle(api)  # the confirmation link's delivery: its transactions, not ours
    login: Any = api.client.post("/api/auth/login", json={
        "email": "ann@example.com", "password": "correct horse battery"})
    assert login.status_code == 200
    assert api.client.post("/api/auth/login", json={
        "email": "nobody@example.com", "password": "whatever pw"}).status_code == 401
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "bob@example.com")
    _email_loop_idle(api)  # its own short transactions are not the request's
    joined = api.client.post(f"/api/invites/{token}/accept",
                             json={"name": "Bob", "password": "bob's password"})
    assert joined.status_code == 200, joined.text
    _email_loop_idle(api)
    form = api.client.get("/signin").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    page = api.client.post("/signin", data={"csrf_token": csrf, "email": "bob@example.com",
                                            "password": "bob's password"})
    assert page.status_code == 200, page.text
    assert [what for what, _, _ in observed] == ["hash", "verify", "verify", "hash", "verify"]
    assert all(not on_loop and free for _, on_loop, free in observed), observed


def test_a_dead_invite_link_costs_no_hash(api: Api,
                                          observed: list[tuple[str, bool, bool]]) -> None:
    response = api.client.post("/api/invites/not-a-real-token/accept",
                               json={"name": "Eve", "password": "long enough pw"})
    api.error(response, 404, "invite_not_found")
    assert observed == []
