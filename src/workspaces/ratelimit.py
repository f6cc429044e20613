"""Fixed-window rate limits counted in the database, so every server instance shares them."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.db import dialect_insert
from workspaces.errors import RateLimited
from workspaces.models import rate_limit_counters as counters


def _window_start(now: datetime, window: timedelta) -> datetime:
    seconds = window.total_seconds()
    return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, now.tzinfo)


async def hit(conn: AsyncConnection, *, key: str, limit: int, window: timedelta,
              what: str) -> None:
    """Count one event for `key`; over `limit` in the current window: 429 with Retry-After."""
    now = clock.now()
    start = _window_start(now, window)
    upsert = (
        dialect_insert(conn.dialect.name)(counters)
        .values(key=key, window_start=start, count=1)
        .on_conflict_do_update(index_elements=[counters.c.key, counters.c.window_start],
                               set_={"count": counters.c.count + 1})
    )
    used = int((await conn.execute(upsert.returning(counters.c.count))).scalar_one())
    if used > limit:
        retry_after = max(1, math.ceil((start + window - now).total_seconds()))
        raise RateLimited(
            f"Too many {what}: the limit is {limit} per {_describe(window)}. Try again in "
            f"{retry_after} seconds.",
            headers={"Retry-After": str(retry_after)}, retry_after=retry_after,
        )


def _describe(window: timedelta) -> str:
    minutes = window.total_seconds() / 60
    return "hour" if minutes == 60 else f"{minutes:g} minutes"
