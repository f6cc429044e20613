"""Realistic data for the benchmark, written with set-based SQL (seconds, not minutes).

Everything is a function of a name and a number, so the harness, wrk's Lua script and the
pgbench scripts can all name the same rows without sharing a file:

- user `kind`-`i`: id `md5('user-kind-i')::uuid`, email `kind-i@bench.example`;
- a bearer token `bench-<kind>-api-i` (its sha256 stored), an invite token `bench-<kind>-inv-i`;
- an OAuth grant `md5('grant-kind-i')::uuid` to the bench client, and a refresh token
  `bench-<kind>-ref-i` under it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from workspaces import clock
from workspaces.db import create_app_engine, parse_url
from workspaces.oauth import keys, tokens
from workspaces.security import hash_password, hash_token
from workspaces.settings import Settings

OWNER_TOKEN = "bench-owner-api-0"
PREVIEW_TOKEN = "bench-preview-inv-0"
MEMBERS = 50  # in the `team` workspace, the owner included
SCALE_INVITES = 100_000
# A product's confidential client (client_secret_basic), trusted: its grants need no consent.
CLIENT_ID = "wsc_bench"
CLIENT_SECRET = "wscs_bench-secret"  # the benchmark's own, in a scratch database
# What a product asks for when it signs its users in (docs/integration.md).
GRANT_SCOPES = ("openid", "email", "profile", "workspaces", "offline_access")


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
_CLIENT = """
INSERT INTO oauth_clients (id, name, secret_hash, trusted, redirect_uris,
                           post_logout_redirect_uris, scopes, workspace_restricted, created_at,
                           updated_at)
VALUES (:id, 'Bench product', :hash, true, CAST(:uris AS json), CAST('[]' AS json),
        CAST(:scopes AS json), false, now(), now())
"""
# Grants as a code redemption leaves them (a token row of the user's stands for the sign-in
# session, the sid), live for the refresh token's thirty days.
_GRANTS = """
WITH p AS (SELECT CAST(:kind AS text) AS kind)
INSERT INTO oauth_grants (id, client_id, user_id, scopes, workspace_id, session_id, auth_time,
                          created_at, expires_at)
SELECT md5('grant-' || p.kind || '-' || i)::uuid, :client, md5('user-' || p.kind || '-' || i)::uuid,
       CAST(:scopes AS json), NULL, md5('token-' || p.kind || '-' || i)::uuid, now(), now(),
       now() + interval '30 days'
FROM p, generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""
_REFRESH_TOKENS = """
WITH p AS (SELECT CAST(:kind AS text) AS kind)
INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at, expires_at)
SELECT encode(sha256(convert_to('bench-' || p.kind || '-ref-' || i, 'UTF8')), 'hex'),
       md5('grant-' || p.kind || '-' || i)::uuid, now(), now() + interval '30 days'
FROM p, generate_series(CAST(:first AS int), CAST(:last AS int)) AS i
"""


def md5_uuid(name: str) -> uuid.UUID:
    """The id the seed's SQL gives `name` (`md5(name)::uuid`)."""
    return uuid.UUID(hashlib.md5(name.encode()).hexdigest())  # noqa: S324 - an id


def client_basic() -> str:
    """The bench client's Authorization header (client_secret_basic)."""
    pair = f"{CLIENT_ID}:{CLIENT_SECRET}".encode()
    return "Basic " + base64.b64encode(pair).decode()


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


def _grants(conn: Connection, kind: str, first: int, last: int, *, refresh: bool) -> None:
    values = {"kind": kind, "first": first, "last": last}
    conn.execute(text(_GRANTS), values | {"client": CLIENT_ID,
                                          "scopes": json.dumps(GRANT_SCOPES)})
    if refresh:
        conn.execute(text(_REFRESH_TOKENS), values)


def seed(conn: Connection, ranges: Ranges) -> None:
    """The owner, `team` (50 members, one pending invite to preview), `writes`, `accepts`
    (pairs of a user and an invite to them), `big` (100,000 invites); the bench client, a
    grant of the owner's (for `access_token`), and each pair's user's grant with a refresh
    token."""
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
    conn.execute(text(_CLIENT), {"id": CLIENT_ID, "hash": hash_token(CLIENT_SECRET),
                                 "uris": json.dumps(["https://product.bench.example/callback"]),
                                 "scopes": json.dumps(GRANT_SCOPES)})
    _grants(conn, "owner", 0, 0, refresh=False)
    _grants(conn, "acc", 1, pairs, refresh=True)
    conn.execute(text("ANALYZE"))


def access_token(database: str, settings: Settings) -> str:
    """A JWT access token for the owner under their grant, signed with the key the server
    signs with (made here if the database has none yet): what the token endpoint would issue
    for that grant, living `settings.access_token_ttl_minutes`."""

    async def mint() -> str:
        engine = create_app_engine(parse_url(database), pool_size=1)
        try:
            async with engine.begin() as conn:
                signer = await keys.signing_key(conn, settings)
        finally:
            await engine.dispose()
        return tokens.mint_access_token(
            signer, settings, subject=str(md5_uuid("user-owner-0")), client_id=CLIENT_ID,
            scopes=GRANT_SCOPES, grant_id=md5_uuid("grant-owner-0"),
            auth_time=clock.now()).token

    return asyncio.run(mint())
