"""The audit trail: who did what to which invite or membership, and when. No secrets in it.

Written by `events.tell` (a change's `AuditLine`), read here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.errors import InvalidInput
from workspaces.models import audit_events
from workspaces.pagination import Cursor, check_limit, keyset, page_of

if TYPE_CHECKING:
    from workspaces.workspaces.service import Access


# Every action the trail records, in the words the Audit log tab shows: the one list that
# `events.changes` writes (as a change's `AuditLine`), the API's `action` filter checks and
# the tab's filter offers.
ACTIONS: dict[str, str] = {
    "workspace_created": "Workspace created",
    "created": "Invite sent",
    "resent": "Invite re-sent",
    "revoked": "Invite revoked",
    "accepted": "Invite accepted",
    "declined": "Invite declined",
    "role_changed": "Role changed",
    "removed": "Member removed",
    "left": "Member left",
    "renamed": "Workspace renamed",
    "ownership_transferred": "Ownership transferred",
    "account_deleted": "Member's account deleted",
    "expired": "Invite expired",
    "webhook_created": "Webhook endpoint added",
    "webhook_updated": "Webhook endpoint changed",
    "webhook_deleted": "Webhook endpoint deleted",
    "webhook_secret_rotated": "Webhook signing secret rotated",
}


def check_action(action: str) -> str:
    """`action` if the trail knows it; 422 `invalid_action` otherwise."""
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}.",
                           code="invalid_action", field="action")
    return action


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
    actor_client_id: str | None = None  # a service client that acted, as it was named then
    actor_client_name: str | None = None


async def list_events(
    conn: AsyncConnection, *, access: Access, limit: int, cursor: str | None,
    action: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Newest first, for owners and admins, only `action` if given; returns the page and the
    next page's cursor (which continues the same filter when passed with it)."""
    access.require("admin", "read the audit trail")
    check_limit(limit)
    after = Cursor.decode(cursor)
    selected = select(audit_events).where(audit_events.c.workspace_id == access.workspace.id)
    if action is not None:
        selected = selected.where(audit_events.c.action == check_action(action))
    query = keyset(selected, audit_events.c.created_at, audit_events.c.id, after, limit)
    entries = [
        AuditEntry(r.id, r.action, r.actor_user_id, r.actor_email, r.target_type, r.target_id,
                   r.target_email, dict(r.detail or {}), clock.aware(r.created_at),
                   r.actor_client_id, r.actor_client_name)
        for r in await conn.execute(query)
    ]
    return page_of(entries, limit, lambda e: Cursor(e.created_at, e.id))
