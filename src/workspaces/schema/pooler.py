"""Telling a transaction pooler from a direct connection or a session pooler.

The deploy lock is a session advisory lock held across several transactions, and the server's
default connection settings keep prepared statements on their connection: both need every
statement of a client connection to run on one server connection, as they do on PostgreSQL
itself and through a session pooler. A transaction pooler (PgBouncer `pool_mode = transaction`
or `statement`) hands each transaction, and each statement outside one, whichever server
connection is free.

The probe opens two client connections. A reads its server process (`pg_backend_pid()`); B opens
a transaction, reads its own and holds it; A reads again, and B lets go. On PostgreSQL itself or
through a session pooler, A always answers the same pid and B never A's. Through a transaction
pooler, B is handed A's idle server connection (PgBouncer reuses the last one released), or A's
second statement runs elsewhere. Only pids count as evidence, never a delay or a failure: a slow
server, a full pool or no connection slot left leaves the answer "not found", and the command
goes on (and meets any real problem in its own words).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import URL

from workspaces.db import asyncpg_target
from workspaces.errors import SchemaError

_PID = "SELECT pg_backend_pid()"


def transaction_pooler(url: URL, *, timeout: float = 2.0, rounds: int = 3) -> str | None:
    """What shows that `url` reaches PostgreSQL through a transaction pooler, or None (a direct
    connection, a session pooler, SQLite, or nothing could be told)."""
    if url.get_backend_name() != "postgresql":
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: a command, or `serve` before it starts its loop
        return asyncio.run(_probe(url, timeout=timeout, rounds=rounds))
    # Called from code running an event loop (an embedding program, a test driving a browser):
    # the toolkit is synchronous, so the probe gets a loop of its own in another thread.
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, _probe(url, timeout=timeout, rounds=rounds)).result()


async def _probe(url: URL, *, timeout: float, rounds: int) -> str | None:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    # The server's own way from a URL to asyncpg's arguments (host, port, socket, sslmode...).
    target, extra = asyncpg_target(url)
    args, params = dialect().create_connect_args(target)  # type: ignore[no-untyped-call]
    params = {**params, **extra, "timeout": timeout, "statement_cache_size": 0,
              "server_settings": {"application_name": "workspaces pooler probe"}}
    opened: list[Any] = []  # asyncpg connections
    try:
        for _ in range(2):
            opened.append(await asyncpg.connect(*args, **params))
        for _ in range(rounds):
            found = await _round(*opened, timeout=timeout)
            if found:
                return found
        return None
    except asyncpg.PostgresError as error:
        if "pooling mode" in str(error):  # PgBouncer: "... not allowed in statement pooling mode"
            return f"the pooler refused a transaction: {error}"
        return None
    except (OSError, TimeoutError, asyncpg.InterfaceError):
        return None
    finally:
        for conn in opened:
            conn.terminate()


async def _round(a: Any, b: Any, *,
                 timeout: float) -> str | None:
    first = await a.fetchval(_PID, timeout=timeout)
    await b.execute("BEGIN", timeout=timeout)
    try:
        held = await b.fetchval(_PID, timeout=timeout)
        if held == first:
            return (f"a second client connection was given the first one's server connection "
                    f"(backend pid {first}) while the first was still open")
        # With every server connection busy, A waits for one until B lets go: a full pool says
        # nothing by itself, so wait, let B go, and look at the pid A gets.
        again = asyncio.ensure_future(a.fetchval(_PID))
        await asyncio.wait({again}, timeout=timeout)
    finally:
        await b.execute("ROLLBACK", timeout=timeout)
    second = await asyncio.wait_for(again, timeout)
    if second != first:
        return (f"two statements of one client connection ran on different server connections "
                f"(backend pid {first}, then {second})")
    return None


def refusal(evidence: str, *, serving: bool) -> SchemaError:
    """`error[transaction_pooler]`: what was found, and what to change (for `serve`, or for
    a command that takes the deploy lock)."""
    found = (f"The database is reached through a transaction pooler (such as PgBouncer with "
             f"pool_mode = transaction): {evidence}.")
    if serving:
        return SchemaError(
            "transaction_pooler",
            f"{found} With DATABASE_POOLING=session (the default) the server keeps prepared "
            "statements on its connections, which such a pooler hands to other clients.",
            fix="Set DATABASE_POOLING=transaction in the server's environment and start it "
                "again (schema commands such as `workspaces db deploy` still need the database "
                "itself or a session-mode pool: give them that address with --database-url)",
        )
    return SchemaError(
        "transaction_pooler",
        f"{found} Refusing to take the deploy lock through it: the lock is held by one "
        "database session across several transactions, and the pooler would run them on "
        "other sessions, so it would protect nothing. Nothing was changed.",
        fix="Run schema commands against the database itself (or a session-mode pool): give "
            "its address with --database-url or DATABASE_URL; only `workspaces serve` goes "
            "through the transaction pooler, with DATABASE_POOLING=transaction",
    )
