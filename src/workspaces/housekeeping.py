"""Deleting what can no longer matter (rate-limit windows long closed, tokens long expired),
and telling what happened by itself (invites that expired unanswered: `invite.expired`).

Every instance runs the sweep once at start and then hourly; instances sweeping at the same time
delete the same rows, which is harmless. Rows are kept a day past their end so that anyone
reading the tables while investigating an incident still finds recent history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from workspaces import clock
from workspaces.invites.service import tell_expired
from workspaces.models import account_tokens, auth_tokens, rate_limit_counters

log = logging.getLogger("workspaces.housekeeping")
KEEP = timedelta(days=1)  # at least the longest rate-limit window (a day)
EVERY = timedelta(hours=1)
EXPIRY_BATCH = 500  # tell_expired's default


@dataclass(frozen=True)
class Swept:
    windows: int
    tokens: int
    expired_invites: int = 0


async def sweep(engine: AsyncEngine) -> Swept:
    cutoff = clock.now() - KEEP
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
    return Swept(windows.rowcount, tokens.rowcount + links.rowcount, expired)


async def run(engine: AsyncEngine, stop: asyncio.Event) -> None:
    """Sweep now and every hour until `stop`; a failed sweep (database restarting) waits."""
    while not stop.is_set():
        try:
            swept = await sweep(engine)
            if swept.windows or swept.tokens or swept.expired_invites:
                log.info("deleted %d old rate-limit windows and %d expired tokens; told %d "
                         "invites expired", swept.windows, swept.tokens, swept.expired_invites)
        except Exception as exc:  # the loop must outlive a database outage
            log.warning("housekeeping sweep failed, trying again in an hour: %s: %s",
                        type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=EVERY.total_seconds())
