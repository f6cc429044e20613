"""The audit trail: who did what to which invite or membership, and when. No secrets in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import audit_events, users
from workspaces.pagination import Cursor, check_limit, keyset, page_of

if TYPE_CHECKING:
    from workspaces.workspaces.service import Access


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
    conn: AsyncConnection, *, access: Access, limit: int, cursor: str | None
) -> tuple[list[AuditEntry], str | None]:
    """Newest first, for owners and admins; returns the page and the next page's cursor."""
    access.require("admin", "read the audit trail")
    check_limit(limit)
    after = Cursor.decode(cursor)
    query = keyset(
        select(audit_events, users.c.email.label("actor_email"))
        .outerjoin(users, users.c.id == audit_events.c.actor_user_id)
        .where(audit_events.c.workspace_id == access.workspace.id),
        audit_events.c.created_at, audit_events.c.id, after, limit,
    )
    entries = [
        AuditEntry(r.id, r.action, r.actor_user_id, r.actor_email, r.target_type, r.target_id,
                   r.target_email, dict(r.detail or {}), clock.aware(r.created_at))
        for r in await conn.execute(query)
    ]
    return page_of(entries, limit, lambda e: Cursor(e.created_at, e.id))
