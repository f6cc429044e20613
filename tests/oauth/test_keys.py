"""Signing keys in the database: the first key, what signs and what is published over a
rotation, and the per-process verification cache."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import time_machine
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.api.conftest import Api
from workspaces.db import create_app_engine, parse_url
from workspaces.oauth import keys, tokens
from workspaces.settings import Settings

T = TypeVar("T")
GRANT = uuid.UUID("3f1e0b5c-7d52-4a8e-9a61-0c7b9b8d2e11")


def in_db(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work(conn)` in one committed transaction, as a request or a CLI command runs it."""
    async def run() -> T:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _mint(settings: Settings, signer: tokens.Signer) -> str:
    return tokens.mint_access_token(signer, settings, subject="wsc_backend",
                                    client_id="wsc_backend", scopes=["members:read"],
                                    grant_id=GRANT).token


def _verify(settings: Settings, token: str) -> tokens.AccessClaims:
    kid = tokens.unverified_kid(token)

    async def check(conn: AsyncConnection) -> tokens.AccessClaims:
        found = await keys.verification_keys(conn, settings, kid=kid)
        return tokens.verify_access_token(token, found, issuer=tokens.issuer(settings),
                                          audience=tokens.api_audience(settings))

    return in_db(settings, check)


def _signer(settings: Settings) -> tokens.Signer:
    return in_db(settings, lambda conn: keys.signing_key(conn, settings))


def _kids(settings: Settings) -> list[str]:
    async def published(conn: AsyncConnection) -> list[str]:
        return [jwk["kid"] for jwk in await keys.published_keys(conn, settings)]

    return in_db(settings, published)


def test_the_first_key_is_made_at_start_and_signs(api: Api, settings: Settings) -> None:
    rows = api.db.sql("SELECT kid, alg, public_jwk, sealed_private_key, retired_at "
                      "FROM signing_keys")
    assert len(rows) == 1
    kid, alg, public_jwk, sealed, retired = rows[0]
    assert alg == "RS256" and retired is None
    jwk = public_jwk if isinstance(public_jwk, dict) else json.loads(str(public_jwk))
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}  # no private part
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", kid)
    assert "PRIVATE" not in str(sealed) and "BEGIN" not in str(sealed)
    signer = _signer(settings)
    assert signer.kid == kid
    assert _kids(settings) == [kid]
    claims = _verify(settings, _mint(settings, signer))
    assert claims.client_id == "wsc_backend"


def test_signing_makes_the_first_key_when_the_start_could_not(api: Api,
                                                              settings: Settings) -> None:
    api.db.sql("DELETE FROM signing_keys")

    async def twice(conn: AsyncConnection) -> tuple[str | None, str | None]:
        return (await keys.ensure_first_key(conn, settings),
                await keys.ensure_first_key(conn, settings))

    made, again = in_db(settings, twice)
    assert made is not None and again is None
    assert _signer(settings).kid == made
    assert api.db.sql("SELECT count(*) FROM signing_keys") == [(1,)]


def test_a_rotation_publishes_first_and_signs_only_after_the_cache_age(
        api: Api, settings: Settings) -> None:
    old = _signer(settings)
    start = datetime.now(UTC)
    max_age = timedelta(seconds=settings.jwks_max_age_seconds)
    with time_machine.travel(start, tick=False):
        new = in_db(settings, lambda conn: keys.rotate(conn, settings))
        assert new.state == "pending" and new.activates_at == start + max_age
        assert _signer(settings).kid == old.kid  # never the unpublished-long-enough key
        assert _kids(settings) == [new.kid, old.kid]
        old_token = _mint(settings, old)
    with time_machine.travel(start + max_age - timedelta(microseconds=1), tick=False):
        assert _signer(settings).kid == old.kid
    with time_machine.travel(start + max_age, tick=False):
        signer = _signer(settings)
        assert signer.kid == new.kid
        assert _verify(settings, _mint(settings, signer)).client_id == "wsc_backend"
        assert _verify(settings, old_token).client_id == "wsc_backend"
    ttl = timedelta(minutes=settings.access_token_ttl_minutes)
    with time_machine.travel(start + max_age + ttl + tokens.SKEW - timedelta(seconds=1),
                             tick=False):
        assert _kids(settings) == [new.kid, old.kid]  # its last tokens may still be valid
    with time_machine.travel(start + max_age + ttl + tokens.SKEW, tick=False):
        assert _kids(settings) == [new.kid]
