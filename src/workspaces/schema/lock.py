"""The deploy lock: one schema changer at a time across every replica.

PostgreSQL: a session-level advisory lock on a dedicated autocommit connection, taken with
`pg_try_advisory_lock` in a polling loop, so no transaction is ever open while waiting (waiting
inside a transaction is how replicas deadlock each other). The waiter names the holder, found
through `pg_locks` and `pg_stat_activity`. Session locks do not survive a transaction-mode
pooler such as PgBouncer: every command that takes the lock refuses one first (pooler.py).

SQLite: the database allows one writer at a time; each migration runs in a `BEGIN IMMEDIATE`
transaction that waits up to the lock timeout, and re-reads the ledger before acting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from workspaces.errors import SchemaError

# Two int4 keys ("WSKS", "DMIG"), shown in pg_locks as classid/objid with objsubid 2.
LOCK_KEYS = {"a": 0x57534B53, "b": 0x444D4947}


def holder(conn: Connection) -> str:
    return held_by(conn) or "a session that just released it"


def held_by(conn: Connection) -> str | None:
    """Who holds the deploy lock (a schema change in progress); None: nobody does."""
    if conn.dialect.name != "postgresql":
        return None  # SQLite has no deploy lock to see (module docstring)
    row = conn.execute(text(
        "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = :a AND l.objid = :b "
        "AND l.objsubid = 2 AND l.granted "
        # Advisory locks belong to one database; other databases on the server hold their own.
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ), LOCK_KEYS).first()
    if row is None:
        return None
    since = row.backend_start.strftime("%H:%M:%S UTC") if row.backend_start else "?"
    where = f" from {row.client_addr}" if row.client_addr else ""
    name = row.application_name or "unnamed client"
    return f"{name} (backend pid {row.pid}{where}, since {since})"


@contextmanager
def schema_lock(
    engine: Engine, *, timeout: float, say: Callable[[str], None]
) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + timeout
        next_report = 0.0
        while not conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), LOCK_KEYS).scalar():
            now = time.monotonic()
            who = holder(conn)
            if now >= deadline:
                raise SchemaError(
                    "lock_timeout",
                    f"Another schema change holds the deploy lock: {who}; gave up after "
                    f"{timeout:g} s.",
                    fix="Wait for it to finish and rerun, or raise --lock-timeout. If that "
                        "process is gone for good, end its session with "
                        "SELECT pg_terminate_backend(<pid>).",
                )
            if now >= next_report:
                say(f"Waiting for the deploy lock held by {who} ...")
                next_report = now + 10
            time.sleep(0.1 + random.random() * 0.2)  # noqa: S311 (jitter, not security)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEYS)
    finally:
        conn.close()
