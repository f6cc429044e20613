"""Fixed-window rate limits counted in the database, so every server instance shares them."""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.db import dialect_insert
from workspaces.errors import RateLimited
from workspaces.models import rate_limit_counters as counters


@dataclass(frozen=True)
class Limit:
    """At most `limit` events for `key` per `window`; `what` names them in the refusal, `name`
    (the setting that sets the limit) in the count of refusals that /metrics exports."""

    key: str
    limit: int
    window: timedelta
    what: str
    name: str = field(kw_only=True)


def hashed(value: str) -> str:
    """How a key names an address (email or IP): a digest, so keys stay short and the table
    holds no addresses."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def client_key(client: str) -> str:
    """A client address as limits count it: an IPv6 address by its /64 (one host commonly
    holds the whole network), anything else as it is; hashed."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return hashed(client)
    if address.version == 6:
        return hashed(str(ipaddress.ip_network(f"{address}/64", strict=False)))
    return hashed(str(address))


def mailbox_key(address: str) -> str:
    """A normalised email address as the per-recipient limit counts it: the `+tag` and the
    dots of the local part dropped, since many providers deliver those variants to one
    mailbox (only counting merges them; the addresses stay distinct everywhere else)."""
    local, _, domain = address.rpartition("@")
    return hashed(f"{local.split('+', 1)[0].replace('.', '')}@{domain}")


def _window_start(now: datetime, window: timedelta) -> datetime:
    seconds = window.total_seconds()
    return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, now.tzinfo)


def _refuse(limit: Limit, start: datetime, now: datetime) -> RateLimited:
    from workspaces.metrics.process import RATE_LIMITED  # the CLI counts limits too: load late

    RATE_LIMITED.labels(limit.name).inc()
    retry_after = max(1, math.ceil((start + limit.window - now).total_seconds()))
    return RateLimited(
        f"Too many {limit.what}: the limit is {limit.limit} per {_describe(limit.window)}. "
        f"Try again in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)}, retry_after=retry_after,
    )


async def hit(conn: AsyncConnection, *limits: Limit) -> None:
    """Count one event against each limit; any over its limit: 429 with Retry-After.

    The counters are updated in key order: each counter row stays locked until commit, and
    transactions that take the same rows in the same order cannot deadlock (so every writer of
    the counters keeps that order: `undo` sorts too, and `clear` comes after them). Raising
    rolls the counts back with everything else, so only what really happened is counted.
    """
    now = clock.now()
    for limit in sorted(limits, key=lambda each: each.key):
        start = _window_start(now, limit.window)
        upsert = (
            dialect_insert(conn.dialect.name)(counters)
            .values(key=limit.key, window_start=start, count=1)
            .on_conflict_do_update(index_elements=[counters.c.key, counters.c.window_start],
                                   set_={"count": counters.c.count + 1})
        )
        used = int((await conn.execute(upsert.returning(counters.c.count))).scalar_one())
        if used > limit.limit:
            raise _refuse(limit, start, now)


async def undo(conn: AsyncConnection, *limits: Limit) -> None:
    """Take back one event counted by `hit` in the current window (it turned out not to be
    one of those the limit is about)."""
    now = clock.now()
    for limit in sorted(limits, key=lambda each: each.key):
        await conn.execute(
            update(counters)
            .where(counters.c.key == limit.key,
                   counters.c.window_start == _window_start(now, limit.window),
                   counters.c.count > 0)
            .values(count=counters.c.count - 1))


async def clear(conn: AsyncConnection, key: str) -> None:
    """Forget every count of `key` (e.g. the failures before a successful sign-in)."""
    await conn.execute(delete(counters).where(counters.c.key == key))


def _describe(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    if hours == 24:
        return "day"
    if hours == 1:
        return "hour"
    return f"{window.total_seconds() / 60:g} minutes"
