"""Signing keys, shared by every instance through the `signing_keys` table.

A key's life: published (in the JWKS) from the moment it is inserted; signs from `activates_at`
until `retired_at`; published until every token it signed has expired (`retired_at` plus the
token lifetime plus the verification skew); then dropped from the JWKS, and deleted a day later
by housekeeping.

A rotation inserts the new key to activate JWKS_MAX_AGE_SECONDS from now and retires the
signing key at that same instant. The JWKS is served with `max-age=JWKS_MAX_AGE_SECONDS`, so a
relying party's cached key set fetched before the rotation has expired by the time the new key
signs, and one fetched after it holds the new key: no relying party ever sees a token signed by
a key its cache lacks. The first key signs at once: no token existed before it.

The database holds the state; this process keeps only caches: the public keys for offline
verification (`verification_keys`, refreshed every few seconds, and at once when a token names
a kid it lacks) and the unsealed private keys by kid (unsealing and parsing one is slow).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import and_, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspaces import clock
from workspaces.errors import Conflict, ServiceUnavailable
from workspaces.models import signing_keys
from workspaces.oauth import tokens
from workspaces.oauth.tokens import ALG, SKEW, Signer, token_ttl
from workspaces.security import seal, secret_key, unseal
from workspaces.settings import Settings

log = logging.getLogger("workspaces.oauth")
KeyState = Literal["pending", "signing", "retired", "expired"]
RSA_BITS = 2048
# The verification cache is read again after this long, or sooner (but not more often than
# UNKNOWN_KID_SECONDS) when a token names a kid it lacks.
REFRESH_SECONDS = 5.0
UNKNOWN_KID_SECONDS = 1.0


class RotationPending(Conflict):
    code = "rotation_pending"


class SigningKeyUnreadable(ServiceUnavailable):
    code = "signing_key_unreadable"


class NoSigningKeys(ServiceUnavailable):
    code = "signing_keys_missing"


@dataclass(frozen=True)
class KeyInfo:
    """A key as `workspaces keys list` shows it."""

    kid: str
    alg: str
    state: KeyState
    created_at: datetime
    activates_at: datetime
    retired_at: datetime | None
    published_until: datetime | None  # None: published for as long as it is not retired


def published_until(retired_at: datetime | None, settings: Settings) -> datetime | None:
    """When a key retired at `retired_at` leaves the JWKS: its last token has expired."""
    return None if retired_at is None else retired_at + token_ttl(settings) + SKEW


def _generate() -> RSAKey:
    """A new RSA key whose kid is its RFC 7638 thumbprint."""
    return RSAKey.generate_key(RSA_BITS, parameters={"alg": ALG, "use": "sig"}, auto_kid=True)


async def _new_row(settings: Settings, *, activates_at: datetime) -> dict[str, Any]:
    key = await asyncio.to_thread(_generate)  # tens of milliseconds: not on the event loop
    pem = key.as_pem(private=True).decode()
    public = {**key.as_dict(private=False), "alg": ALG, "use": "sig"}
    return {"kid": key.kid, "alg": ALG, "public_jwk": public,
            "sealed_private_key": seal(secret_key(settings), pem), "created_at": clock.now(),
            "activates_at": activates_at, "retired_at": None}


async def _take_turns(conn: AsyncConnection) -> None:
    """Key changes take turns (PostgreSQL: a transaction-level advisory lock); SQLite's write
    transactions already do. Call in a write transaction."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                           {"key": "signing_keys"})


def _signs_at(now: datetime) -> Any:
    return and_(signing_keys.c.activates_at <= now,
                or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > now))


def _published_at(now: datetime, settings: Settings) -> Any:
    return or_(signing_keys.c.retired_at.is_(None),
               signing_keys.c.retired_at > now - token_ttl(settings) - SKEW)


async def _signing_row(conn: AsyncConnection, now: datetime) -> Any:
    return (await conn.execute(
        select(signing_keys).where(_signs_at(now))
        .order_by(signing_keys.c.activates_at.desc(), signing_keys.c.kid.desc()).limit(1))
    ).first()


async def ensure_first_key(conn: AsyncConnection, settings: Settings) -> str | None:
    """Make a key that signs from now if none does (the first one); its kid when it made one.
    Instances racing here take turns, so one key is made. Call in a write transaction."""
    if await _signing_row(conn, clock.now()) is not None:
        return None
    row = await _new_row(settings, activates_at=clock.now())  # made before taking the turn
    await _take_turns(conn)
    if await _signing_row(conn, clock.now()) is not None:  # another instance made one
        return None
    await conn.execute(signing_keys.insert().values(row))
    return str(row["kid"])


async def make_first_key(engine: AsyncEngine, settings: Settings) -> None:
    """At server start: the first key, so that the JWKS (a GET, which changes nothing) has it
    to publish. A failure (schema not migrated yet, database down) is logged, not fatal: the
    first token request makes the key then."""
    try:
        async with engine.begin() as conn:
            kid = await ensure_first_key(conn, settings)
    except Exception as exc:  # the server still serves everything else
        log.warning("no signing key made at start (%s: %s); the first token request makes it",
                    type(exc).__name__, exc)
        return
    if kid is not None:
        log.info("made the first signing key %s", kid)


_private: dict[tuple[str, str], RSAKey] = {}  # by SECRET_KEY and kid


def _unsealed(row: Any, settings: Settings) -> RSAKey:
    secret = secret_key(settings)
    key = _private.get((secret, row.kid))
    if key is None:
        pem = unseal(secret, row.sealed_private_key)
        if pem is None:
            raise SigningKeyUnreadable(
                f"The signing key {row.kid} was sealed with another SECRET_KEY: every instance "
                "and command must use the SECRET_KEY the keys were made with.")
        key = _private[secret, row.kid] = RSAKey.import_key(pem)
    return key


async def signing_key(conn: AsyncConnection, settings: Settings) -> Signer:
    """The key that signs now: the newest whose activation has come and that is not retired
    (never one not yet due: relying parties may not have it). When none does, the first key is
    made here, which needs a write transaction."""
    row = await _signing_row(conn, clock.now())
    if row is None:
        await ensure_first_key(conn, settings)
        row = await _signing_row(conn, clock.now())
    if row is None:  # only if the clock went back between the two reads
        raise NoSigningKeys("No signing key is active yet; try again in a moment.")
    return Signer(row.kid, _unsealed(row, settings))


async def published_keys(conn: AsyncConnection, settings: Settings) -> list[dict[str, Any]]:
    """The JWKS's keys: pending ones, the signing one, and retired ones whose tokens may still
    be valid; newest first."""
    rows = await conn.execute(
        select(signing_keys.c.public_jwk).where(_published_at(clock.now(), settings))
        .order_by(signing_keys.c.activates_at.desc(), signing_keys.c.kid.desc()))
    return [dict(jwk) for jwk in rows.scalars()]


async def list_keys(conn: AsyncConnection, settings: Settings) -> list[KeyInfo]:
    """Every stored key with its state now, newest first."""
    now = clock.now()
    signer = await _signing_row(conn, now)
    rows = await conn.execute(select(signing_keys).order_by(
        signing_keys.c.activates_at.desc(), signing_keys.c.kid.desc()))
    listed = []
    for row in rows:
        activates = clock.aware(row.activates_at)
        retired = clock.aware(row.retired_at) if row.retired_at is not None else None
        until = published_until(retired, settings)
        state: KeyState
        if activates > now:
            state = "pending"
        elif signer is not None and row.kid == signer.kid:
            state = "signing"
        elif until is not None and until <= now:
            state = "expired"
        else:
            state = "retired"
        listed.append(KeyInfo(row.kid, row.alg, state, clock.aware(row.created_at), activates,
                              retired, until))
    return listed


async def rotate(conn: AsyncConnection, settings: Settings) -> KeyInfo:
    """Publish a new key that signs JWKS_MAX_AGE_SECONDS from now, when the signing key
    retires. Refused (409 `rotation_pending`) while an earlier rotation's key is still
    waiting: rotating again would not bring anything forward; and (503
    `signing_key_unreadable`) when this SECRET_KEY cannot unseal the signing key, since the
    servers could not then unseal the new one either. Call in a write transaction."""
    await ensure_first_key(conn, settings)
    current = await _signing_row(conn, clock.now())
    if current is not None:  # sealed with this SECRET_KEY, or the servers could not sign
        _unsealed(current, settings)  # with the key sealed here
    row = await _new_row(settings, activates_at=clock.now())
    await _take_turns(conn)
    now = clock.now()
    pending = (await conn.execute(
        select(signing_keys.c.kid, signing_keys.c.activates_at)
        .where(signing_keys.c.activates_at > now)
        .order_by(signing_keys.c.activates_at.desc()).limit(1))).first()
    if pending is not None:
        starts = clock.aware(pending.activates_at)
        raise RotationPending(
            f"A rotation is already under way: key {pending.kid} starts signing at "
            f"{starts.isoformat(timespec='seconds').replace('+00:00', 'Z')}. Rotate again "
            "after that, if needed.",
            fix="workspaces keys list")
    switch = now + timedelta(seconds=settings.jwks_max_age_seconds)
    row |= {"created_at": now, "activates_at": switch}
    # Every key that would still sign at the switch retires then (one, unless rows were
    # added by hand), so the new key is the only one signing from that instant.
    await conn.execute(update(signing_keys).where(
        signing_keys.c.activates_at <= now,
        or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > switch))
        .values(retired_at=switch))
    await conn.execute(signing_keys.insert().values(row))
    return KeyInfo(row["kid"], ALG, "pending" if switch > now else "signing", now, switch,
                   None, None)


async def delete_expired(conn: AsyncConnection, settings: Settings, *, before: datetime) -> int:
    """Delete the keys that left the JWKS before `before` (their private parts with them)."""
    result = await conn.execute(delete(signing_keys).where(
        signing_keys.c.retired_at.is_not(None),
        signing_keys.c.retired_at < before - token_ttl(settings) - SKEW))
    return result.rowcount


@dataclass
class _Cached:
    keys: KeySet
    kids: frozenset[str]
    loaded: datetime


_published: dict[str, _Cached] = {}


async def verification_keys(conn: AsyncConnection, settings: Settings, *,
                            kid: str | None = None) -> KeySet:
    """The published public keys, for verifying our tokens offline: cached per process and
    database, read again after REFRESH_SECONDS, or when `kid` (the token's) is not among them
    and the last read is UNKNOWN_KID_SECONDS old. (Ages by `clock`: a clock set back counts
    as stale.)"""
    cached = _published.get(settings.database_url)
    now = clock.now()
    if cached is not None:
        age = (now - cached.loaded).total_seconds()
        fresh = 0 <= age < REFRESH_SECONDS and (
            kid is None or kid in cached.kids or age < UNKNOWN_KID_SECONDS)
        if fresh:
            return cached.keys
    jwks = await published_keys(conn, settings)
    _published[settings.database_url] = _Cached(
        KeySet([RSAKey.import_key(jwk) for jwk in jwks]), frozenset(jwk["kid"] for jwk in jwks),
        now)
    return _published[settings.database_url].keys


async def verified_access_token(conn: AsyncConnection, settings: Settings, token: str
                                ) -> tokens.AccessClaims:
    """An access token for our API, verified offline against the published keys (see
    `tokens.verify_access_token`); raises tokens.InvalidAccessToken.

    A token verified before is not verified again while it has not expired and the key that
    signed it is still published (a key withdrawn after a leak refuses its tokens within
    REFRESH_SECONDS, as without the memo): its RSA signature check and claim parsing were
    most of a JWT request's own cost (docs/benchmarks.md). Whether its grant is still live is
    asked of the database on every request, as ever."""
    issuer, audience = tokens.issuer(settings), tokens.api_audience(settings)
    memo = (settings.database_url, issuer, audience, token)
    known = _verified.get(memo)
    if known is not None:
        claims, kid = known
        await verification_keys(conn, settings, kid=kid)  # read again when stale
        published = _published.get(settings.database_url)
        if (published is not None and kid in published.kids
                and clock.now() < claims.expires_at + tokens.SKEW):
            return claims
        _verified.pop(memo, None)  # another request may have dropped it while this one read
    signer = tokens.unverified_kid(token)
    found = await verification_keys(conn, settings, kid=signer)
    claims = tokens.verify_access_token(token, found, issuer=issuer, audience=audience)
    if signer is not None:
        if len(_verified) >= VERIFIED_KEPT:
            del _verified[next(iter(_verified))]  # the oldest
        _verified[memo] = (claims, signer)
    return claims


VERIFIED_KEPT = 1024  # tokens remembered per process (each about a kilobyte)
_verified: dict[tuple[str, str, str, str], tuple[tokens.AccessClaims, str]] = {}
