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
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from workspaces.errors import SchemaError

if TYPE_CHECKING:  # the quick status reads the holder without loading SQLAlchemy
    from sqlalchemy import Connection, Engine

# Two int4 keys ("WSKS", "DMIG"), shown in pg_locks as classid/objid with objsubid 2.
LOCK_KEYS = {"a": 0x57534B53, "b": 0x444D4947}

# Who holds the deploy lock in this database (no row: nobody). Literal keys, no parameters: the
# quick status runs it through the plain driver, the toolkit through SQLAlchemy.
HOLDER_SQL = (
    "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.classid = {a} AND l.objid = {b} "
    "AND l.objsubid = 2 AND l.granted "
    # Advisory locks belong to one database; other databases on the server hold their own.
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
).format(**LOCK_KEYS)


def describe_holder(row: Any) -> str:
    """`application (backend pid N from address, since date time UTC)` of a HOLDER_SQL row."""
    pid, application, address, started = row
    since = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "?"
    where = f" from {address}" if address else ""
    return f"{application or 'unnamed client'} (backend pid {pid}{where}, since {since})"


def held_by(conn: Connection) -> str | None:
    """PostgreSQL: who holds the deploy lock now (a schema change in progress), or None."""
    if conn.dialect.name != "postgresql":
        return None
    row = _holder_row(conn)
    return None if row is None else describe_holder(row)


def holder(conn: Connection) -> str:
    return held_by(conn) or "a session that just released it"


def _holder_row(conn: Connection) -> tuple[Any, ...] | None:
    from sqlalchemy import text

    row = conn.execute(text(HOLDER_SQL)).first()
    return None if row is None else tuple(row)


def _lock_timeout(conn: Connection, timeout: float) -> SchemaError:
    """Gave up waiting: the queries that show the holder and end it, and what else to do."""
    from workspaces.schema.errors import libpq_url

    row = _holder_row(conn)
    fix = "Wait for it to finish and rerun the command, or rerun it with a longer --lock-timeout."
    if row is not None:
        pid = int(row[0])
        psql = f"psql {shlex.quote(libpq_url(conn.engine.url))} -c"
        show = ("SELECT pid, application_name, client_addr, backend_start, state, query_start, "
                f"query FROM pg_stat_activity WHERE pid = {pid}")
        # Ends that backend only while it still holds the deploy lock: pasted later, after
        # the holder finished and its pid went to another session, it ends nothing.
        end = ("SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
               f"WHERE l.pid = {pid} AND l.locktype = 'advisory' AND l.classid = {LOCK_KEYS['a']} "
               f"AND l.objid = {LOCK_KEYS['b']} AND l.objsubid = 2 AND l.granted AND l.database = "
               "(SELECT oid FROM pg_database WHERE datname = current_database())")
        fix = (f"{psql} {shlex.quote(show)}  # what the holder is doing\n"
               f"{psql} {shlex.quote(end)}  # ends it: only when that process is gone for good"
               f"\n{fix}")
    who = describe_holder(row) if row is not None else "a session that just released it"
    return SchemaError(
        "lock_timeout",
        f"Another schema change holds the deploy lock: {who}; gave up after {timeout:g} s.",
        fix=fix,
    )


@contextmanager
def schema_lock(
    engine: Engine, *, timeout: float, say: Callable[[str], None]
) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + timeout
        next_report = 0.0
        while not conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), LOCK_KEYS).scalar():
            now = time.monotonic()
            who = holder(conn)
            if now >= deadline:
                raise _lock_timeout(conn, timeout)
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
