"""Deleting what can no longer matter (rate-limit windows long closed, tokens long expired,
events older than EVENT_RETENTION_DAYS with their webhook deliveries and attempts), and telling
what happened by itself (invites that expired unanswered: `invite.expired`). Retired signing
keys go a day after they left the JWKS.

Every instance runs the sweep once at start and then hourly; instances sweeping at the same time
delete the same rows, which is harmless. Rows are kept a day past their end so that anyone
reading the tables while investigating an incident still finds recent history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspaces import clock
from workspaces.db import dialect_insert
from workspaces.events.feed import settled
from workspaces.invites.service import tell_expired
from workspaces.models import (
    account_tokens,
    auth_tokens,
    event_horizon,
    events,
    rate_limit_counters,
    webhook_deliveries,
)
from workspaces.oauth import keys
from workspaces.settings import Settings

log = logging.getLogger("workspaces.housekeeping")
KEEP = timedelta(days=1)  # at least the longest rate-limit window (a day)
EVERY = timedelta(hours=1)
EXPIRY_BATCH = 500  # tell_expired's default
EVENT_BATCH = 1000


@dataclass(frozen=True)
class Swept:
    windows: int
    tokens: int
    expired_invites: int = 0
    events: int = 0
    test_messages: int = 0  # webhook test messages (they belong to no event)
    signing_keys: int = 0  # retired, and out of the JWKS (with their private parts)


async def sweep(engine: AsyncEngine, settings: Settings) -> Swept:
    now = clock.now()
    cutoff = now - KEEP
    expired = 0
    while True:  # in batches, each its own transaction, holding its rows' locks briefly
        async with engine.begin() as conn:
            told = await tell_expired(conn)
        expired += told
        if told < EXPIRY_BATCH:
            break
    async with engine.begin() as conn:
        windows = await conn.execute(
            delete(rate_limit_counters).where(rate_limit_counters.c.window_start < cutoff))
        tokens = await conn.execute(delete(auth_tokens).where(auth_tokens.c.expires_at < cutoff))
        links = await conn.execute(  # mailed one-time links, with the address they went to
            delete(account_tokens).where(account_tokens.c.expires_at < cutoff))
        old_keys = await keys.delete_expired(conn, settings, before=cutoff)
    retained = now - timedelta(days=settings.event_retention_days)
    swept_events = await sweep_events(engine, retained)
    async with engine.begin() as conn:
        tests = await conn.execute(delete(webhook_deliveries).where(
            webhook_deliveries.c.event_position.is_(None),
            webhook_deliveries.c.created_at < retained))
    return Swept(windows.rowcount, tokens.rowcount + links.rowcount, expired, swept_events,
                 tests.rowcount, old_keys)


async def sweep_events(engine: AsyncEngine, before: datetime) -> int:
    """Delete the events that occurred before `before` as a prefix of the feed's order,
    raising the horizon to its end in the same transaction (events/feed.py): only settled
    events, and none after the first one still kept, so a cursor is either before the
    horizon (refused) or sees every event after it. Their webhook deliveries and attempts go
    with them (foreign keys). In batches, each its own transaction."""
    deleted = 0
    while True:
        async with engine.begin() as conn:
            first = (await conn.execute(
                select(events.c.txid, events.c.position, events.c.occurred_at)
                .where(settled(conn.dialect.name))
                .order_by(events.c.txid, events.c.position).limit(EVENT_BATCH))).all()
            old = list(itertools.takewhile(lambda r: clock.aware(r.occurred_at) < before,
                                           first))
            if old:
                last = (old[-1].txid, old[-1].position)
                deleted += (await conn.execute(delete(events).where(
                    tuple_(events.c.txid, events.c.position) <= tuple_(*last)))).rowcount
                await _raise_horizon(conn, *last)
        if len(old) < EVENT_BATCH:
            return deleted


async def _raise_horizon(conn: AsyncConnection, txid: int, position: int) -> None:
    """`event_horizon` to (txid, position), unless another sweep raised it further."""
    insert = dialect_insert(conn.dialect.name)(event_horizon).values(
        id=1, txid=txid, position=position, swept_at=clock.now())
    await conn.execute(insert.on_conflict_do_update(
        index_elements=[event_horizon.c.id],
        set_={"txid": insert.excluded.txid, "position": insert.excluded.position,
              "swept_at": insert.excluded.swept_at},
        where=tuple_(event_horizon.c.txid, event_horizon.c.position)
        < tuple_(insert.excluded.txid, insert.excluded.position)))


async def run(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """Sweep now and every hour until `stop`; a failed sweep (database restarting) waits."""
    while not stop.is_set():
        try:
            swept = await sweep(engine, settings)
            if any((swept.windows, swept.tokens, swept.expired_invites, swept.events,
                    swept.test_messages, swept.signing_keys)):
                log.info("deleted %d old rate-limit windows, %d expired tokens, %d events "
                         "older than %d days, %d webhook test messages and %d retired signing "
                         "keys; told %d invites expired", swept.windows, swept.tokens,
                         swept.events, settings.event_retention_days, swept.test_messages,
                         swept.signing_keys, swept.expired_invites)
        except Exception as exc:  # the loop must outlive a database outage
            log.warning("housekeeping sweep failed, trying again in an hour: %s: %s",
                        type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=EVERY.total_seconds())
