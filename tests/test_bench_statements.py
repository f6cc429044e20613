"""The benchmark's SQL capture -> pgbench script conversion (bench/statements.py)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from bench.statements import script


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_equal_parameters_become_literals_and_fresh_values_per_transaction_expressions() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    workspace = uuid.uuid4()
    first_id, second_id = uuid.uuid4(), uuid.uuid4()
    insert = "INSERT INTO t (id, ws, email, token, at, note) VALUES ($1, $2, $3, $4, $5, $6)"
    runs = [
        [("BEGIN", ()), (insert, (first_id, workspace, "a@x.example", _sha("a"), now, "it's")),
         ("SELECT * FROM t WHERE id = $1", (first_id,)), ("COMMIT", ())],
        [("BEGIN", ()), (insert, (second_id, workspace, "b@x.example", _sha("b"), now, "it's")),
         ("SELECT * FROM t WHERE id = $1", (second_id,)), ("COMMIT", ())],
    ]
    made = script(runs)
    lines = made.text.splitlines()
    assert made.statements == 4
    assert lines[2] == "BEGIN;" and lines[-1] == "COMMIT;"
    assert f"'{workspace}'" in lines[3]  # the same in both runs: a literal
    assert "'it''s'" in lines[3]  # quoted as SQL
    assert str(first_id) not in made.text and "a@x.example" not in made.text
    fresh_id = lines[3].split("VALUES (")[1].split(", '")[0]
    assert ":client_id" in fresh_id and ":n" in fresh_id
    assert lines[4] == f"SELECT * FROM t WHERE id = {fresh_id};"  # one value, one expression


def test_accept_pair_values_become_functions_of_the_pair_counter() -> None:
    def user(i: int) -> uuid.UUID:
        return uuid.UUID(hashlib.md5(f"user-acc-{i}".encode()).hexdigest())  # noqa: S324

    runs = [[("UPDATE i SET s = 1 WHERE token = $1 AND email = $2 AND user_id = $3",
              (_sha(f"bench-acc-inv-{i}"), f"acc-{i}@bench.example", user(i)))]
            for i in (1, 2)]
    text = script(runs, pair_samples=(1, 2)).text
    assert "convert_to('bench-acc-inv-' || :i, 'UTF8')" in text
    assert "('acc-' || :i || '@bench.example')" in text
    assert "md5('user-acc-' || :i)::uuid" in text


def test_runs_that_sent_different_statements_are_refused() -> None:
    with pytest.raises(ValueError, match="different statements"):
        script([[("SELECT 1", ())], [("SELECT 2", ())]])


def test_colons_in_literals_are_escaped_so_pgbench_sees_no_variables() -> None:
    at = datetime(2026, 12, 6, 8, 10, tzinfo=UTC)
    upsert = "INSERT INTO counters (key, window_start) VALUES ($1, $2)"
    runs = [[(upsert, ("oauth:token:addr:1f", at))] for _ in (1, 2)]
    line = script(runs).text.splitlines()[-1]
    assert ":" not in line  # pgbench would read `:token` as a variable
    assert "E'oauth\\x3atoken\\x3aaddr\\x3a1f'" in line
    assert "E'2026-12-06T08\\x3a10\\x3a00+00\\x3a00'" in line


def test_backslashes_and_quotes_survive_the_escape_form() -> None:
    runs = [[("SELECT $1", ("a:b\\c'd",))] for _ in (1, 2)]
    assert script(runs).text.splitlines()[-1] == "SELECT E'a\\x3ab\\\\c''d';"


def test_fresh_event_ids_become_unique_per_transaction() -> None:
    insert = "INSERT INTO events (id) VALUES ($1)"
    runs = [[(insert, (f"evt_{uuid.uuid4().hex}",))] for _ in (1, 2)]
    line = script(runs).text.splitlines()[-1]
    assert line.startswith("INSERT INTO events (id) VALUES (('evt_' || md5(")
    assert ":client_id" in line and ":n" in line

