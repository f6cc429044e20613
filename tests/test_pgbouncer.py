"""Debian's PgBouncer in front of the test PostgreSQL: the server through transaction pooling
(DATABASE_POOLING=transaction) while schema commands go direct; the refusals without it; and
the probe that tells a transaction pooler from PostgreSQL itself or a session pooler.

Needs `pgbouncer` (Debian: apt-get install pgbouncer); skipped without it, unless
WORKSPACES_REQUIRE_TOOLS names it (CI), then failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from tests.conftest import (
    INVITES,
    Cli,
    Sink,
    at_once,
    free_port,
    link_in,
    serving,
    spawn,
    system_tool,
)
from workspaces.db import create_sync_engine, parse_url
from workspaces.schema.pooler import transaction_pooler
from workspaces.schema.serving import ServingStatus
from workspaces.schema.verified import quick_status

POOL_SIZE = 3  # server connections per database and user: fewer than the server's clients


@contextmanager
def pgbouncer(server: URL, mode: str) -> Iterator[int]:
    """A private PgBouncer on 127.0.0.1 in front of `server`, in pool mode `mode` with
    POOL_SIZE server connections per database; yields its port."""
    binary = system_tool("pgbouncer", "pgbouncer")
    folder = Path(tempfile.mkdtemp(prefix="wspgb-"))
    folder.chmod(0o755)  # PgBouncer refuses to run as root: it reads these as another user
    port = free_port()
    socket_dir = server.query.get("host")  # the embedded server listens on a socket only
    host = str(socket_dir) if socket_dir else server.host or "127.0.0.1"
    (folder / "users.txt").write_text(f'"{server.username}" "{server.password or ""}"\n')
    (folder / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={host} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = {mode}
default_pool_size = {POOL_SIZE}
max_client_conn = 200
""")
    for path in folder.iterdir():
        path.chmod(0o644)
    log = (folder / "pgbouncer.log").open("w")
    user = []
    if os.geteuid() == 0:  # the owner of the server's private socket folder, else nobody
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if socket_dir else "nobody"
        user = ["-u", owner]
    process = subprocess.Popen([binary, *user, str(folder / "pgbouncer.ini")],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30  # a hang guard: a loaded machine starts slowly
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (folder / "pgbouncer.log").read_text()
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def through(port: int, database_url: str) -> str:
    """The URL of the same database through the PgBouncer on `port`."""
    url = make_url(database_url)
    return url.set(host="127.0.0.1", port=port, query={}).render_as_string(hide_password=False)


def _server_connections(database_url: str) -> int:
    """How many server connections (PgBouncer's) are open on the database."""
    rows = Cli(database_url, {}).sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()")
    return int(str(rows[0][0]))


def test_the_server_runs_through_transaction_pooling(pg_url: str, pg_server: URL,
                                                      smtp: Sink) -> None:
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0  # direct
    with pgbouncer(pg_server, "transaction") as port:
        pooled = through(port, pg_url)
        env = {"DATABASE_POOLING": "transaction", "DATABASE_POOL_SIZE": "8",
               "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_POLL_SECONDS": "0.2"}
        with serving(["--database-url", pooled], env) as (base, _):
            client = httpx.Client(base_url=base, timeout=30)
            owner = client.post("/api/auth/signup", json={
                "email": "ann@example.com", "password": "correct horse", "name": "Ann"})
            assert owner.status_code == 201, owner.text
            headers = {"Authorization": f"Bearer {owner.json()['token']}"}
            slug = client.post("/api/workspaces", json={"name": "Acme"},
                               headers=headers).json()["slug"]
            guests = [f"guest{n}@example.com" for n in range(4)]
            invited = at_once(*(
                lambda g=g: client.post(f"/api/workspaces/{slug}/invites", json={"email": g},
                                        headers=headers) for g in guests))
            assert [r.status_code for r in invited] == [201] * 4, [r.text for r in invited]
            smtp.wait_for(4)  # delivered by the email loop, through the pooler too
            tokens = [link_in(smtp.to(g)[0]) for g in guests]
            joined = at_once(*(
                lambda t=t: client.post(f"/api/invites/{t}/accept",
                                        json={"name": "Guest", "password": "guest password"})
                for t in tokens))
            assert [r.status_code for r in joined] == [200] * 4, [r.text for r in joined]
            # Reads (autocommit: each statement on whichever server connection is free) and
            # writes at once, from more client connections than the pool's server connections.
            burst = at_once(
                *(lambda: client.get(f"/api/workspaces/{slug}/members", headers=headers)
                  for _ in range(16)),
                *(lambda n=n: client.patch(f"/api/workspaces/{slug}", json={"name": f"Acme {n}"},
                                           headers=headers) for n in range(4)),
                *(lambda: client.get(f"/api/workspaces/{slug}/invites", headers=headers)
                  for _ in range(4)),
            )
            assert [r.status_code for r in burst] == [200] * 24, [
                r.text for r in burst if r.status_code != 200]
            members = burst[0].json()
            assert sorted(m["email"] for m in members) == sorted(["ann@example.com", *guests])
            assert client.get("/readyz").json()["status"] == "ready"  # status via the pooler
            assert 2 <= _server_connections(pg_url) <= POOL_SIZE


def test_serve_refuses_a_transaction_pooler_it_is_not_configured_for(
        pg_url: str, pg_server: URL) -> None:
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0
    with pgbouncer(pg_server, "transaction") as port:
        process = spawn(["serve", "--port", str(free_port()), "--database-url",
                         through(port, pg_url)],
                        {"SECRET_KEY": "serve-test-" + "k" * 32, "DATABASE_URL": ""})
        code = process.wait(timeout=30)
        _, err = process.communicate()
    assert code == 1, err
    assert err.startswith("error[transaction_pooler]: The database is reached through a "
                          "transaction pooler"), err
    assert "DATABASE_POOLING=transaction" in err and "--database-url" in err


def test_schema_commands_refuse_a_transaction_pooler_before_touching_anything(
        pg_url: str, pg_server: URL) -> None:
    direct = Cli(pg_url, {})
    with pgbouncer(pg_server, "transaction") as port:
        pooled = Cli(through(port, pg_url), {})
        deploy = pooled("db", "deploy")
        assert deploy.exit_code == 1, deploy.output
        assert "error[transaction_pooler]" in deploy.stderr
        assert "Refusing to take the deploy lock through it" in deploy.stderr
        assert direct.tables() == set()  # not even the ledger
        as_json = json.loads(pooled("db", "deploy", "--json").stdout)
        assert as_json["error"]["code"] == "transaction_pooler"
        assert as_json["error"]["next"] == []  # advice, no command: a hint
        assert as_json["error"]["hint"][0].startswith("Run schema commands against the database")

        assert direct("db", "deploy").exit_code == 0
        status = pooled("db", "status")  # read-only: works through the pooler
        assert status.exit_code == 0, status.output
        assert quick_status(pooled.url) is not None  # the quick way too (schema/verified.py)
        serving = ServingStatus(parse_url(pooled.url), None, pooling="transaction")
        assert asyncio.run(serving.quick()) is not None  # and a server's, through asyncpg
        for command in (["db", "repair", "--yes"], ["db", "rollback", "--yes"],
                        ["db", "baseline"], ["db", "resolve", "--rolled-back", INVITES],
                        ["db", "execute", "--stdin"]):
            refused = pooled(*command, stdin="DROP TABLE users")
            assert refused.exit_code == 1, (command, refused.output)
            assert "error[transaction_pooler]" in refused.stderr, (command, refused.output)
        assert "users" in direct.tables()
        assert direct("db", "history").stdout.count(": ok") == 1  # only the direct deploy


def test_the_probe_finds_no_pooler_directly_or_through_session_pooling(
        pg_url: str, pg_server: URL) -> None:
    assert transaction_pooler(parse_url(pg_url)) is None
    with pgbouncer(pg_server, "session") as port:
        assert transaction_pooler(parse_url(through(port, pg_url))) is None
        assert Cli(through(port, pg_url), {})("db", "deploy").exit_code == 0  # session: fine
    with pgbouncer(pg_server, "transaction") as port:
        found = transaction_pooler(parse_url(through(port, pg_url)))
        assert found and "server connection" in found
    with pgbouncer(pg_server, "statement") as port:
        found = transaction_pooler(parse_url(through(port, pg_url)))
        assert found and "statement pooling mode" in found


def test_the_probe_on_a_server_without_a_free_connection_says_nothing(pg_url: str) -> None:
    """The second connection refused (no slot left): no answer, rather than a wrong one."""
    role = f"wst_probe_{uuid.uuid4().hex[:8]}"
    admin = create_engine(parse_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1'))
    try:
        limited = make_url(pg_url).set(username=role, password=None)
        assert transaction_pooler(parse_url(limited.render_as_string(False))) is None
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_the_probe_works_when_called_under_a_running_event_loop(pg_url: str, pg_server: URL
                                                                ) -> None:
    """A deploy from code that runs an event loop (an embedding program, a browser test) gets
    the probe's answer, not "asyncio.run() cannot be called from a running event loop"."""
    async def deploy_inside_a_loop(url: str) -> str | None:
        return transaction_pooler(parse_url(url))

    assert asyncio.run(deploy_inside_a_loop(pg_url)) is None
    with pgbouncer(pg_server, "transaction") as port:
        assert asyncio.run(deploy_inside_a_loop(through(port, pg_url)))


def test_read_only_commands_stay_read_only_without_a_startup_option(pg_url: str) -> None:
    """Read-only is BEGIN READ ONLY now (PgBouncer refuses the `options` startup parameter)."""
    engine = create_sync_engine(parse_url(pg_url), read_only=True)
    try:
        with engine.connect() as conn, pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("CREATE TABLE t (id int)"))
    finally:
        engine.dispose()
