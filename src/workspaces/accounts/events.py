"""An account's own security trail: what changed its password, address or sessions, and when.

Shown to the account's owner (profile page, `GET /api/me/events`); nothing secret goes in it.
Written by `events.tell` (a change's `AccountLine`); workspace changes have their own trail
(`workspaces.audit`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import account_events

# What an entry can say, and how the profile page words it.
ACTIONS = {
    "signed_up": "Account created",
    "email_verified": "Email address verified",
    "password_reset": "Password reset through an emailed link",
    "password_changed": "Password changed",
    "email_change_requested": "Address change requested",
    "email_changed": "Email address changed",
    "name_changed": "Name changed",
    "session_revoked": "A session was signed out",
    "sessions_revoked": "Other sessions were signed out",
    "app_revoked": "A connected app's access was revoked",
}


@dataclass(frozen=True)
class AccountEntry:
    id: uuid.UUID
    action: str
    detail: dict[str, Any]
    created_at: datetime

    @property
    def words(self) -> str:
        return ACTIONS.get(self.action, self.action)


async def list_account_events(conn: AsyncConnection, *, user_id: uuid.UUID,
                              limit: int = 20) -> list[AccountEntry]:
    """The newest `limit` entries of the account."""
    rows = await conn.execute(
        select(account_events.c.id, account_events.c.action, account_events.c.detail,
               account_events.c.created_at)
        .where(account_events.c.user_id == user_id)
        .order_by(account_events.c.created_at.desc(), account_events.c.id.desc())
        .limit(limit))
    return [AccountEntry(r.id, r.action, dict(r.detail or {}), clock.aware(r.created_at))
            for r in rows]
