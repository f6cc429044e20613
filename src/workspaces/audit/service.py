"""The audit trail: who did what to which invite or membership, and when. No secrets in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import audit_events, users
from workspaces.pagination import Cursor


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    action: str
    actor_user_id: uuid.UUID | None
    actor_email: str | None
    target_type: str
    target_id: str
    target_email: str | None
    detail: dict[str, Any]
    created_at: datetime


async def record(
    conn: AsyncConnection,
    *,
    workspace_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    target_email: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(insert(audit_events).values(
        id=uuid.uuid4(), workspace_id=workspace_id, actor_user_id=actor_id, action=action,
        target_type=target_type, target_id=str(target_id), target_email=target_email,
        detail=detail or {}, created_at=clock.now(),
    ))


async def list_events(
    conn: AsyncConnection, *, workspace_id: uuid.UUID, limit: int, after: Cursor | None
) -> list[AuditEntry]:
    """Newest first; `after` continues from the last entry of the previous page."""
    query = (
        select(audit_events, users.c.email.label("actor_email"))
        .outerjoin(users, users.c.id == audit_events.c.actor_user_id)
        .where(audit_events.c.workspace_id == workspace_id)
        .order_by(audit_events.c.created_at.desc(), audit_events.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(or_(
            audit_events.c.created_at < after.created_at,
            and_(audit_events.c.created_at == after.created_at, audit_events.c.id < after.id),
        ))
    rows = await conn.execute(query)
    return [
        AuditEntry(r.id, r.action, r.actor_user_id, r.actor_email, r.target_type, r.target_id,
                   r.target_email, dict(r.detail or {}), clock.aware(r.created_at))
        for r in rows
    ]
