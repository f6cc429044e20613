"""API fixtures: settings for a migrated database and a real SMTP sink, a client per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Cli, Sink
from workspaces.app import create_app
from workspaces.settings import Settings


@pytest.fixture
def settings(app_db: str, smtp: Sink) -> Settings:
    return Settings(
        database_url=app_db, smtp_url=f"smtp://127.0.0.1:{smtp.port}",
        secret_key="test-secret-key-of-enough-length", base_url="http://testserver",
        email_poll_seconds=0.2, email_retry_seconds=0.2, email_max_attempts=3,
        # Every request comes from one client ("testclient") and fixtures sign up, create and
        # invite a lot: the limits' own tests lower these again.
        signup_limit_per_client_per_hour=10_000, workspace_limit_per_client_per_hour=10_000,
        invite_limit_per_user_per_hour=10_000, invite_limit_per_recipient_per_day=10_000,
        _env_file=None,  # type: ignore[call-arg]
    )


def _hold(monkeypatch: pytest.MonkeyPatch, module: Any, stop_at: int) -> None:
    """Replace the background loop `module.run` (its `stop` event the `stop_at`th argument)
    with one that does nothing until the app stops. Before the app starts, or it is too late."""

    async def held(*args: Any, **kwargs: Any) -> None:
        stop: asyncio.Event = args[stop_at]
        await stop.wait()

    monkeypatch.setattr(module, "run", held)


@pytest.fixture
def held_webhook_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's webhook delivery loop does nothing until the app stops: for tests that read
    what was queued (attempts 0, pending), which the loop would otherwise be sending meanwhile,
    woken by the very commit that queued it."""
    from workspaces.webhooks import delivery

    _hold(monkeypatch, delivery, 4)


@pytest.fixture
def held_email_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's email delivery loop does nothing until the app stops: for tests that need the
    pool left alone (its poll, every `email_poll_seconds`, would meet a connection the test
    ended first). Ask for it before the fixture that starts the app."""
    from workspaces.mail import delivery

    _hold(monkeypatch, delivery, 4)


@pytest.fixture
def held_housekeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's housekeeping loop does not sweep: for tests that sweep themselves and count
    what their sweep deleted (the app's sweep at start could take the rows first). Ask for it
    before the fixture that starts the app."""
    from workspaces import housekeeping

    _hold(monkeypatch, housekeeping, 2)


def token_of(issued: dict[str, Any]) -> str:
    """The invite token in a create or resend answer's `accept_url`."""
    return str(issued["accept_url"]).rsplit("/", 1)[1]


@dataclass
class Api:
    """A TestClient with the steps most tests take, each checked."""

    client: TestClient
    db: Cli

    @property
    def settings(self) -> Settings:
        """The settings the application under test was made with."""
        settings: Settings = self.client.app.state.settings  # type: ignore[attr-defined]
        return settings

    def signup(self, email: str, name: str = "", password: str = "correct horse battery"
               ) -> dict[str, str]:
        response = self.client.post("/api/auth/signup", json={
            "email": email, "password": password, "name": name or email.split("@")[0]})
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def workspace(self, headers: dict[str, str], name: str = "Acme") -> str:
        response = self.client.post("/api/workspaces", json={"name": name}, headers=headers)
        assert response.status_code == 201, response.text
        return str(response.json()["slug"])

    def invite(self, headers: dict[str, str], slug: str, email: str, role: str = "member",
               **extra: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/workspaces/{slug}/invites",
                                    json={"email": email, "role": role, **extra},
                                    headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def invite_token(self, headers: dict[str, str], slug: str, email: str,
                     role: str = "member") -> str:
        """Invite `email`; the token of the link (what the emailed URL ends with)."""
        return token_of(self.invite(headers, slug, email, role))

    def error(self, response: Any, status: int, code: str) -> str:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"]["code"] == code, body
        assert body["error"]["message"]
        return str(body["error"]["message"])


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings)) as client:
        yield Api(client, Cli(settings.database_url, {}))


def settled(url: str, timeout: float = 60.0) -> None:
    """Wait until the feed shows every event written so far. On PostgreSQL an event shows once
    every older transaction of the cluster has ended, and other tests' databases share the
    cluster; on SQLite at once."""
    from sqlalchemy import text

    from workspaces.db import create_sync_engine, parse_url

    engine = create_sync_engine(parse_url(url))
    if engine.dialect.name != "postgresql":
        return
    query = text("SELECT coalesce(max(txid), 0) < "
                 "pg_snapshot_xmin(pg_current_snapshot())::text::bigint FROM events")
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                if conn.execute(query).scalar():
                    return
            assert time.monotonic() < deadline, "an older transaction stayed open"
            time.sleep(0.02)
    finally:
        engine.dispose()
