"""Parking: a disabled endpoint's pending deliveries leave the due range until it is enabled.

The delivery loop claims from the (status, next_attempt_at) index; a pending delivery of a
disabled endpoint left "due" there would be walked by every claim. So disabling an endpoint
(an owner, an operator, a 410 answer, five days of failures) parks its pending deliveries at
`PARKED`, a time no claim reaches, and enabling it makes them due again at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import webhook_deliveries

PARKED = datetime(9999, 12, 31, tzinfo=UTC)  # a parked delivery's next_attempt_at


async def park(conn: AsyncConnection, endpoint_ids: Collection[uuid.UUID]) -> None:
    """Move the pending deliveries of these (disabled) endpoints out of every claim's reach."""
    if not endpoint_ids:
        return
    d = webhook_deliveries
    await conn.execute(update(d).where(d.c.endpoint_id.in_(list(endpoint_ids)),
                                       d.c.status == "pending")
                       .values(next_attempt_at=PARKED))


async def resume(conn: AsyncConnection, endpoint_id: uuid.UUID) -> None:
    """Make the (enabled again) endpoint's pending deliveries due now."""
    d = webhook_deliveries
    await conn.execute(update(d).where(d.c.endpoint_id == endpoint_id, d.c.status == "pending")
                       .values(next_attempt_at=clock.now()))
