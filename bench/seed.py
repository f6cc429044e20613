"""Realistic data for the benchmark, written with set-based SQL (seconds, not minutes).

Everything is a function of a name and a number, so the harness, wrk's Lua script and the
pgbench scripts can all name the same rows without sharing a file:

- user `kind`-`i`: id `md5('user-kind-i')::uuid`, email `kind-i@bench.example`;
- a bearer token `bench-<kind>-api-i` (its sha256 stored), an invite token `bench-<kind>-inv-i`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from workspaces.security import hash_password

OWNER_TOKEN = "bench-owner-api-0"
PREVIEW_TOKEN = "bench-preview-inv-0"
MEMBERS = 50  # in the `team` workspace, the owner included
SCALE_INVITES = 100_000


@dataclass(frozen=True)
class Ranges:
    """Accept pairs: the app's runs take [1, app_pairs], pgbench's the rest."""

    app_pairs: int
    pgbench_pairs: int


# `:kind` and the bounds are cast once in a CTE (psycopg sends untyped parameters).
_USERS = """
WITH p AS (SELECT CAST(:kind AS text) AS kind)
INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
SELECT md5('user-' || p.kind || '-' || i)::uuid, p.kind || '-' || i || '@bench.example',
       initcap(p.kind) || ' ' || i, :hash, now(), now()
FROM p, generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""
_TOKENS = """
WITH p AS (SELECT CAST(:kind AS text) AS kind)
INSERT INTO auth_tokens (id, user_id, token_hash, kind, created_at, expires_at)
SELECT md5('token-' || p.kind || '-' || i)::uuid, md5('user-' || p.kind || '-' || i)::uuid,
       encode(sha256(convert_to('bench-' || p.kind || '-api-' || i, 'UTF8')), 'hex'), 'api',
       now(), now() + interval '30 days'
FROM p, generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""
_MEMBERS = """
WITH p AS (SELECT CAST(:kind AS text) AS kind)
INSERT INTO workspace_members (workspace_id, user_id, role, created_at)
SELECT md5('ws-' || :slug)::uuid, md5('user-' || p.kind || '-' || i)::uuid, :role, now()
FROM p, generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""
# Invites to `kind`-i, created a second apart (newest last), pending for a week.
_INVITES = """
WITH p AS (SELECT CAST(:kind AS text) AS kind, CAST(:last AS int) AS last)
INSERT INTO workspace_invites (id, workspace_id, email, role, token, status, expires_at,
                               created_at, created_by_user_id)
SELECT md5('invite-' || p.kind || '-' || i)::uuid, md5('ws-' || :slug)::uuid,
       p.kind || '-' || i || '@bench.example', 'member',
       encode(sha256(convert_to('bench-' || p.kind || '-inv-' || i, 'UTF8')), 'hex'),
       'pending', now() + interval '7 days', now() - make_interval(secs => p.last - i),
       md5('user-owner-0')::uuid
FROM p, generate_series(CAST(:first AS int), p.last) AS i
"""


def _workspace(conn: Connection, slug: str) -> None:
    conn.execute(text("INSERT INTO workspaces (id, name, slug, created_at) "
                      "VALUES (md5('ws-' || :slug)::uuid, initcap(:slug), :slug, now())"),
                 {"slug": slug})
    conn.execute(text(_MEMBERS), {"slug": slug, "kind": "owner", "role": "owner",
                                  "first": 0, "last": 0})


def _people(conn: Connection, kind: str, first: int, last: int, password_hash: str) -> None:
    values = {"kind": kind, "first": first, "last": last}
    conn.execute(text(_USERS), values | {"hash": password_hash})
    conn.execute(text(_TOKENS), values)


def seed(conn: Connection, ranges: Ranges) -> None:
    """The owner, `team` (50 members, one pending invite to preview), `writes`, `accepts`
    (pairs of a user and an invite to them), `big` (100,000 invites)."""
    password_hash = hash_password("bench password 1")
    _people(conn, "owner", 0, 0, password_hash)
    for slug in ("team", "writes", "accepts", "big"):
        _workspace(conn, slug)
    _people(conn, "member", 1, MEMBERS - 1, password_hash)
    conn.execute(text(_MEMBERS), {"slug": "team", "kind": "member", "role": "member",
                                  "first": 1, "last": MEMBERS - 1})
    conn.execute(text(_INVITES), {"slug": "team", "kind": "preview", "first": 0, "last": 0})
    pairs = ranges.app_pairs + ranges.pgbench_pairs
    _people(conn, "acc", 1, pairs, password_hash)
    conn.execute(text(_INVITES), {"slug": "accepts", "kind": "acc", "first": 1, "last": pairs})
    conn.execute(text(_INVITES), {"slug": "big", "kind": "big", "first": 1,
                                  "last": SCALE_INVITES})
    conn.execute(text("ANALYZE"))
