"""What SQL one request of a workload sends, turned into a pgbench script that sends the same.

The application is run in-process against the benchmark database with a listener on its engine;
one request is made twice (with two different inputs) and every statement, BEGIN, SAVEPOINT and
COMMIT is recorded with its parameters. Parameters equal in both captures become literals.
Parameters that differ are inputs or fresh values: a value that is a known function of the
pair number (the pair's user, invite, tokens and OAuth grant) becomes that function of pgbench's
pair counter `:i`; a fresh UUID, email, token hash or event id becomes an expression unique per
pgbench transaction; anything else (timestamps, sealed links, email bodies) keeps the first
capture's literal, which is the same size.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from bench import seed

Statement = tuple[str, tuple[Any, ...]]
Request = Callable[[TestClient, int], Any]  # (client, sample number 1 or 2) -> response


@dataclass(frozen=True)
class Script:
    text: str
    statements: int  # per request, BEGIN/COMMIT/SAVEPOINT included


def _pair_values(i: int) -> dict[str, str]:
    """The values the seed derives from pair `i`, with the SQL that derives them."""
    def md5_uuid(name: str) -> str:
        return str(seed.md5_uuid(name))

    def sha(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    return {
        md5_uuid(f"user-acc-{i}"): "md5('user-acc-' || :i)::uuid",
        md5_uuid(f"invite-acc-{i}"): "md5('invite-acc-' || :i)::uuid",
        f"acc-{i}@bench.example": "('acc-' || :i || '@bench.example')",
        sha(f"bench-acc-api-{i}"): "encode(sha256(convert_to('bench-acc-api-' || :i, 'UTF8')), "
                                   "'hex')",
        sha(f"bench-acc-inv-{i}"): "encode(sha256(convert_to('bench-acc-inv-' || :i, 'UTF8')), "
                                   "'hex')",
        md5_uuid(f"grant-acc-{i}"): "md5('grant-acc-' || :i)::uuid",
        sha(f"bench-acc-ref-{i}"): "encode(sha256(convert_to('bench-acc-ref-' || :i, 'UTF8')), "
                                   "'hex')",
    }


def capture(client: TestClient, request: Request) -> list[list[Statement]]:
    """Run `request` twice (samples 1 and 2); the statements each run sent."""
    engine = client.app.state.engine.sync_engine  # type: ignore[attr-defined]
    sent: list[Statement] = []
    from workspaces import app as application  # here: `python -m bench.inprocess` runs older trees
    background = getattr(application, "BACKGROUND", None)

    def requests() -> bool:
        """Not the background loops: a sign-up's email sent while a request runs is not the
        request's (SQLAlchemy's greenlets carry the task's context to these listeners)."""
        return background is None or not background.get()

    def cursor(conn: Any, cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if requests():
            sent.append((statement, tuple(parameters or ())))

    def marker(word: str) -> Callable[..., None]:
        def record(conn: Any, *_: Any) -> None:
            # An AUTOCOMMIT connection (the app's GETs) begins only logically: nothing is sent.
            if (conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
                    and requests()):
                sent.append((word, ()))
        return record

    # Savepoints are sent as statements (seen by the cursor listener); BEGIN and COMMIT are not.
    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", cursor), ("begin", marker("BEGIN")),
        ("commit", marker("COMMIT")), ("rollback", marker("ROLLBACK")),
    ]
    runs: list[list[Statement]] = []
    for name, listener in listeners:
        event.listen(engine, name, listener)

    from workspaces import rows

    def driver(statement: str, parameters: tuple[Any, ...]) -> None:  # reads sent past SQLAlchemy
        if requests():
            sent.append((statement, parameters))

    rows.WATCHERS.append(driver)
    try:
        for sample in (1, 2):
            sent.clear()
            response = request(client, sample)
            assert response.status_code < 400, (response.status_code, response.text)
            runs.append(list(sent))
    finally:
        rows.WATCHERS.remove(driver)
        for name, listener in listeners:
            event.remove(engine, name, listener)
    return runs


def _quoted(text: str) -> str:
    """`text` as an SQL string literal that pgbench sends unchanged: it takes `:name` anywhere
    in a statement, string literals included, for a variable (a rate-limit key such as
    'oauth:token:...' became two parameters, and the statement failed), so colons are
    written as escapes."""
    if ":" not in text:
        return "'" + text.replace("'", "''") + "'"
    escaped = text.replace("\\", "\\\\").replace("'", "''").replace(":", "\\x3a")
    return f"E'{escaped}'"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return _quoted(value.isoformat())
    if isinstance(value, dict | list):
        value = json.dumps(value)
    return _quoted(str(value))


_HEX64 = re.compile(r"[0-9a-f]{64}")
_EVENT_ID = re.compile(r"evt_[0-9a-f]{32}")  # events/tell.py


def _fresh(value: Any, n: int) -> str | None:
    """An expression unique per pgbench transaction for a value the app generated afresh."""
    unique = f"'{n}-' || :run || '-' || :client_id || '-' || :n"
    if isinstance(value, uuid.UUID):
        return f"md5('fresh-' || {unique})::uuid"
    if isinstance(value, str) and "@" in value and len(value) <= 320:
        return f"('w' || {unique} || '@bench.example')"
    if isinstance(value, str) and _HEX64.fullmatch(value):
        return f"encode(sha256(convert_to({unique}, 'UTF8')), 'hex')"
    if isinstance(value, str) and _EVENT_ID.fullmatch(value):  # events.id is unique
        return f"('evt_' || md5({unique}))"
    return None


def script(runs: list[list[Statement]], pair_samples: tuple[int, int] | None = None) -> Script:
    """A pgbench script sending what the first run sent, with inputs made per transaction."""
    first, second = runs
    shapes = ([s for s, _ in first], [s for s, _ in second])
    if shapes[0] != shapes[1]:
        raise ValueError("the two samples sent different statements:\n"
                         + "\n".join(shapes[0]) + "\n---\n" + "\n".join(shapes[1]))
    pairs = _pair_values(pair_samples[0]) if pair_samples else {}
    fresh: dict[str, str] = {}
    lines = ["\\set n :n + 1", "\\set i :first + :client_id + (:n - 1) * :nclients"]
    for (sql, params), (_, other) in zip(first, second, strict=True):
        rendered = sql
        for position in range(len(params), 0, -1):  # $10 before $1
            value, again = params[position - 1], other[position - 1]
            text = _literal(value)
            if value != again:
                key = str(value)
                if key in pairs:
                    text = pairs[key]
                elif (made := fresh.get(key) or _fresh(value, len(fresh))) is not None:
                    fresh[key] = text = made
            rendered = rendered.replace(f"${position}", text)
        lines.append(" ".join(rendered.split()) + ";")
    return Script("\n".join(lines) + "\n", len(first))
