"""The floor's reading of pgbench scripts (bench/floor.py): which it can send, and how."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from bench.floor import _bind, _body, servable, statements_of

_ACCEPT = """\\set n :n + 1
\\set i :first + :client_id + (:n - 1) * :nclients
BEGIN;
UPDATE t SET at='2026-11-26T04:08:13+00:00'::TIMESTAMP WITH TIME ZONE WHERE token = encode(sha256(convert_to('inv-' || :i, 'UTF8')), 'hex')::VARCHAR;
INSERT INTO audit (id) VALUES (md5('fresh-' || :run || '-' || :client_id || '-' || :n)::uuid);
COMMIT;
"""  # noqa: E501 (a script line as the capture writes it)


def test_statements_drop_meta_commands_and_terminators() -> None:
    sent = statements_of(_ACCEPT)
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT" and len(sent) == 4
    assert not any(s.startswith("\\") or s.endswith(";") for s in sent)


def test_casts_and_times_are_not_variables_but_unknown_variables_are() -> None:
    assert servable("SELECT 'x'::VARCHAR, '2026-11-26T04:08:13'::TIMESTAMP;\n")
    assert servable(_ACCEPT)
    assert not servable("SELECT :email;\n")


def test_the_pair_comes_from_the_path_and_fresh_ids_from_it() -> None:
    update, insert = statements_of(_ACCEPT)[1:3]
    bound = _bind(update, "/api/invites/bench-acc-inv-4711/accept")
    assert "'inv-' || 4711," in bound
    assert "04:08:13" in bound and "::VARCHAR" in bound  # literals and casts untouched
    first = _bind(insert, "/api/invites/bench-acc-inv-4711/accept")
    second = _bind(insert, "/api/invites/bench-acc-inv-4712/accept")
    assert ":" not in first.replace("::", "") and first != second
    plain = "SELECT 1"
    assert _bind(plain, "/anything") is plain


def test_the_pair_comes_from_the_body_for_the_token_endpoint() -> None:
    chunks: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": b"grant_type=refresh_token&refresh_", "more_body": True},
        {"type": "http.request", "body": b"token=bench-acc-ref-4711", "more_body": False}]

    async def receive() -> MutableMapping[str, Any]:
        return chunks.pop(0)

    body = asyncio.run(_body(receive))
    assert body == "grant_type=refresh_token&refresh_token=bench-acc-ref-4711"
    update = statements_of(_ACCEPT)[1]
    assert "'inv-' || 4711," in _bind(update, body)
