"""The floor: what any Python server on this machine can make of a workload's SQL.

A bare ASGI application (no framework, no middleware, no ORM, no authentication code) served by
uvicorn with the same workers, event loop and HTTP parser as `workspaces serve`, that answers
every request by sending the workload's captured statements (the pgbench script, verbatim) over
an asyncpg pool and returning the last statement's rows as JSON. It does less than the
application, never more, so its throughput bounds what the application could reach on the
same SQL: if the floor is below a goal, no change to the application's Python meets it.

Scripts may take inputs, pgbench variables: the pair `:i`, which the floor takes from the
request path (`/api/invites/bench-acc-inv-<i>/accept`, what wrk sends for accept) or, when the
path has none, from the body (`...&refresh_token=bench-acc-ref-<i>` for the token endpoint),
and the `:run`, `:client_id` and `:n` that make fresh ids unique, which it derives from the
pair. So the floor for accept claims the same invites the application would, and the floor
for token-refresh rotates the same refresh tokens, in one transaction as pgbench does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HEADERS = [(b"content-type", b"application/json")]


def statements_of(script: str) -> list[str]:
    """The SQL of a pgbench script: its meta-commands (\\set) dropped, one statement a line."""
    return [line.rstrip(";") for line in script.splitlines()
            if line.strip() and not line.startswith("\\")]


_VARIABLE = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


_FROM_PATH = {"i", "n", "client_id", "run"}


def servable(script: str) -> bool:
    """Whether the floor can send this script: no pgbench variables but those it derives."""
    return all(m.group(1) in _FROM_PATH
               for s in statements_of(script) for m in _VARIABLE.finditer(s))


def _bind(sql: str, source: str) -> str:
    """`sql` with its variables set from the pair number `source` (a path or a body) ends with."""
    if not _VARIABLE.search(sql):
        return sql
    pair = int(re.findall(r"\d+", source)[-1])  # an integer: safe to splice into the SQL
    # `run` 999 keeps fresh ids apart from pgbench's, whose runs are its connection counts.
    values = {"i": pair, "n": pair, "client_id": 0, "run": 999}
    return _VARIABLE.sub(lambda m: str(values[m.group(1)]), sql)


class _State:
    pool: Any = None  # asyncpg.Pool
    sql: ClassVar[list[str]] = []
    variables = False  # whether any statement takes the pair


async def _body(receive: Receive) -> str:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks).decode()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _State.sql = statements_of(Path(os.environ["FLOOR_SCRIPT"]).read_text())
                _State.variables = any(_VARIABLE.search(sql) for sql in _State.sql)
                size = int(os.environ.get("FLOOR_POOL", "7"))
                _State.pool = await asyncpg.create_pool(os.environ["FLOOR_DSN"],
                                                        min_size=size, max_size=size)
                await send({"type": "lifespan.startup.complete"})
            else:
                if _State.pool is not None:
                    await _State.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _State.pool is not None
    if scope["path"] == "/ready":  # the harness's readiness probe: no SQL
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    source = scope["path"]
    if _State.variables and not re.search(r"\d", source):
        source = await _body(receive)
    rows: list[Any] = []
    async with _State.pool.acquire() as conn:
        for sql in _State.sql:
            rows = await conn.fetch(_bind(sql, source))
    body = json.dumps([dict(r) for r in rows], default=str).encode()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})
