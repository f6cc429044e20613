"""What each user let each client do: asked once per user and scope set, then remembered."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.db import dialect_insert
from workspaces.models import oauth_consents


async def _granted(conn: AsyncConnection, user_id: uuid.UUID, client_id: str) -> set[str]:
    scopes = (await conn.execute(
        select(oauth_consents.c.scopes).where(oauth_consents.c.user_id == user_id,
                                              oauth_consents.c.client_id == client_id))
              ).scalar()
    return set(scopes or ())


async def consented(conn: AsyncConnection, *, user_id: uuid.UUID, client_id: str,
                    scopes: Iterable[str]) -> bool:
    """Whether the user already granted the client every one of `scopes`."""
    return set(scopes) <= await _granted(conn, user_id, client_id)


async def record_consent(conn: AsyncConnection, *, user_id: uuid.UUID, client_id: str,
                         scopes: Iterable[str]) -> None:
    """Remember that the user granted the client `scopes`, beside what they granted before (a
    later request for any part of it is not asked again)."""
    granted = sorted(await _granted(conn, user_id, client_id) | set(scopes))
    now = clock.now()
    insert = dialect_insert(conn.dialect.name)(oauth_consents).values(
        user_id=user_id, client_id=client_id, scopes=granted, granted_at=now)
    await conn.execute(insert.on_conflict_do_update(
        index_elements=[oauth_consents.c.user_id, oauth_consents.c.client_id],
        set_={"scopes": granted, "granted_at": now}))
