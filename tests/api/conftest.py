"""API fixtures: a migrated database of each kind, a real SMTP sink, and a client per test."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.conftest import Cli, pg_database
from workspaces.settings import Settings
from workspaces.web.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sink:
    """What an SMTP server on 127.0.0.1 received; `refuse` makes it reject recipients."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} emails, got {len(self.messages)}")

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"https?://\S+/invites/(\S+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


@pytest.fixture
def smtp() -> Iterator[Sink]:
    sink = Sink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def migrated_templates(
    pg_server: URL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One migrated database of each kind, copied for each test (fast, and fully isolated)."""
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    assert Cli(f"sqlite:///{sqlite_file}", {})("db", "deploy").exit_code == 0
    name = f"wst_template_{uuid.uuid4().hex[:8]}"
    with pg_database(pg_server, name=name) as pg_template:
        assert Cli(pg_template, {})("db", "deploy").exit_code == 0
        yield {"sqlite": str(sqlite_file), "postgresql": name}


@pytest.fixture(params=["sqlite", "postgresql"])
def app_db(request: pytest.FixtureRequest, migrated_templates: dict[str, str],
           pg_server: URL, tmp_path: Path) -> Iterator[str]:
    """A database at the newest migration, of each kind."""
    if request.param == "sqlite":
        target = tmp_path / "app.db"
        shutil.copy(migrated_templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    with pg_database(pg_server, template=migrated_templates["postgresql"]) as url:
        yield url


@pytest.fixture
def settings(app_db: str, smtp: Sink) -> Settings:
    return Settings(
        database_url=app_db, smtp_url=f"smtp://127.0.0.1:{smtp.port}",
        secret_key="test-secret-key-of-enough-length", base_url="http://testserver",
        email_poll_seconds=0.2, email_retry_seconds=0.2, email_max_attempts=3,
        _env_file=None,  # type: ignore[call-arg]
    )


@dataclass
class Api:
    """A TestClient with the steps most tests take, each checked."""

    client: TestClient
    db: Cli

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
