"""`tell`: the one step every change goes through, in the change's transaction.

A change is told once, as a `Change` (made by the constructors in `changes.py`), and `tell`
writes what each audience keeps of it: the event log and a delivery for each webhook
endpoint that wants it (published types), the workspace's audit trail, the account's own
trail. All in the caller's transaction: no event without its change, no change without its
event, and a rollback takes both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, insert, literal, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.events.catalogue import VERSION, Kind, is_published
from workspaces.models import (
    account_events,
    audit_events,
    events,
    webhook_deliveries,
    webhook_endpoints,
)

# Set in a connection's `info` when deliveries were queued: after the commit, the request
# boundary wakes the webhook delivery loop (as `mail_queued` wakes the email loop).
WEBHOOKS_QUEUED = "webhooks_queued"

ActorKind = Literal["user", "operator", "system", "anonymous", "client"]


@dataclass(frozen=True)
class Actor:
    """Who acted: a signed-in user (their address as it is at that moment), an operator's
    command (acting as `user_id` when it names one), the system (the expiry sweep), someone
    holding an invite's link without signing in, or a service client (a product's backend,
    with its client id and its name at that moment)."""

    kind: ActorKind
    user_id: uuid.UUID | None = None
    email: str | None = None
    client_id: str | None = None
    client_name: str | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID, email: str) -> Actor:
        return cls("user", user_id, email)

    @classmethod
    def client(cls, client_id: str, name: str) -> Actor:
        return cls("client", client_id=client_id, client_name=name)

    def as_json(self) -> dict[str, Any]:
        if self.kind == "client":
            return {"type": "client", "id": self.client_id, "name": self.client_name}
        return {"type": self.kind, "id": str(self.user_id) if self.user_id else None,
                "email": self.email}


SYSTEM = Actor("system")
ANONYMOUS = Actor("anonymous")


@dataclass(frozen=True)
class WorkspaceRef:
    id: uuid.UUID
    slug: str

    def as_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "slug": self.slug}


@dataclass(frozen=True)
class AuditLine:
    """What the workspace's audit trail keeps of a change (`audit.service.ACTIONS`)."""

    action: str
    target_type: str
    target_id: uuid.UUID | str
    target_email: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountLine:
    """What an account's own trail keeps of a change (`accounts.events.ACTIONS`)."""

    user_id: uuid.UUID
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    kind: Kind
    actor: Actor
    data: dict[str, Any]
    workspace: WorkspaceRef | None = None
    audit: AuditLine | None = None
    account: AccountLine | None = None


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def payload(event_id: str, change: Change, occurred_at: datetime) -> dict[str, Any]:
    """The event as the feed serves it and a webhook delivers it."""
    return {
        "id": event_id,
        "type": change.kind,
        "version": VERSION,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "workspace": change.workspace.as_json() if change.workspace else None,
        "actor": change.actor.as_json(),
        "data": change.data,
    }


def current_txid(dialect: str) -> Any:
    """The writing transaction's id (PostgreSQL's xid8, as a number); 0 on SQLite, where
    writers take turns, so positions alone are in commit order."""
    if dialect == "postgresql":
        return text("pg_current_xact_id()::text::bigint")
    return literal(0)


def new_uuid(dialect: str) -> Any:
    if dialect == "postgresql":
        return literal_column("gen_random_uuid()")
    return literal_column("lower(hex(randomblob(16)))")  # SQLite keeps a Uuid as 32 hex digits


async def tell(conn: AsyncConnection, *changes: Change) -> None:
    """Write every audience's record of `changes`, in the caller's transaction."""
    now = clock.now()
    dialect = conn.dialect.name
    published = [c for c in changes if is_published(c.kind)]
    if published:
        rows = []
        for change in published:
            event_id = new_event_id()
            rows.append({"txid": current_txid(dialect), "id": event_id, "type": change.kind,
                         "workspace_id": change.workspace.id if change.workspace else None,
                         "occurred_at": now, "payload": payload(event_id, change, now)})
        positions = list((await conn.execute(
            insert(events).values(rows).returning(events.c.position))).scalars())
        await _fan_out(conn, positions, now)
    audited = [c for c in changes if c.audit is not None and c.workspace is not None]
    if audited:
        await conn.execute(insert(audit_events).values([{
            "id": uuid.uuid4(), "workspace_id": c.workspace.id, "actor_user_id": c.actor.user_id,
            "actor_email": c.actor.email, "actor_client_id": c.actor.client_id,
            "actor_client_name": c.actor.client_name, "action": c.audit.action,
            "target_type": c.audit.target_type, "target_id": str(c.audit.target_id),
            "target_email": c.audit.target_email, "detail": c.audit.detail, "created_at": now,
        } for c in audited if c.audit is not None and c.workspace is not None]))
    accounted = [c.account for c in changes if c.account is not None]
    if accounted:
        await conn.execute(insert(account_events).values([{
            "id": uuid.uuid4(), "user_id": line.user_id, "action": line.action,
            "detail": line.detail, "created_at": now} for line in accounted]))


async def _fan_out(conn: AsyncConnection, positions: list[int], now: datetime) -> None:
    """A delivery for each enabled endpoint that wants each event: the workspace's own and
    the instance's (workspace_id NULL), all types or the event's among theirs. One statement,
    which finds nothing when no endpoint exists."""
    wanted = (
        select(new_uuid(conn.dialect.name), webhook_endpoints.c.id, events.c.position,
               events.c.id, literal("pending"), literal(0), literal(now), literal(now))
        .select_from(events.join(webhook_endpoints, and_(
            webhook_endpoints.c.enabled.is_(True),
            or_(webhook_endpoints.c.workspace_id.is_(None),
                webhook_endpoints.c.workspace_id == events.c.workspace_id),
            or_(webhook_endpoints.c.event_types.is_(None),
                webhook_endpoints.c.event_types.contains(
                    literal(",") + events.c.type + literal(","))))))
        .where(events.c.position.in_(positions))
    )
    queued = await conn.execute(insert(webhook_deliveries).from_select(
        ["id", "endpoint_id", "event_position", "message_id", "status", "attempts",
         "next_attempt_at", "created_at"], wanted))
    if queued.rowcount:
        conn.info[WEBHOOKS_QUEUED] = True  # the request boundary wakes the loop on commit
