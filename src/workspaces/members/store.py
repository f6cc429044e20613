"""The one writer of membership rows: every add, role change and removal happens here, and is
told (`events.tell`) in the same step, with whatever else the caller's change tells.

Rules (who may, the last owner, the lock) stay with the callers' services; this module only
writes and tells, so it imports nothing above the base layer and any service may use it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.db import dialect_insert
from workspaces.events import changes
from workspaces.events.tell import Actor, Change, WorkspaceRef, tell
from workspaces.models import members, users, workspaces


async def add(conn: AsyncConnection, ws: WorkspaceRef, *, user_id: uuid.UUID, email: str,
              name: str, role: str, how: changes.AddedHow, actor: Actor, at: datetime,
              before: tuple[Change, ...] = (), invite_id: uuid.UUID | None = None) -> bool:
    """Make the user a member with `role`; False (nothing written or told) if they already
    are. `before`: changes told ahead of `member.added` (the workspace's creation, the
    invite's acceptance)."""
    added = (await conn.execute(
        dialect_insert(conn.dialect.name)(members)
        .values(workspace_id=ws.id, user_id=user_id, role=role, created_at=at)
        .on_conflict_do_nothing(index_elements=[members.c.workspace_id, members.c.user_id])
        .returning(members.c.user_id)
    )).first()
    if added is None:
        return False
    await tell(conn, *before, changes.member_added(
        ws, changes.member(user_id, email, name, role), how, actor, invite_id))
    return True


async def set_role(conn: AsyncConnection, ws: WorkspaceRef, *, subject: dict[str, Any],
                   role: str, how: changes.RoleChangedHow, actor: Actor) -> Change:
    """Change the role of `subject` (`changes.member(...)` with its current role) and tell
    it; returns the change, so a caller can tell more about it (a transfer)."""
    written = await conn.execute(
        update(members)
        .where(members.c.workspace_id == ws.id,
               members.c.user_id == uuid.UUID(subject["user_id"]))
        .values(role=role))
    # Callers read the membership under the workspace's lock; anything else is a bug, and the
    # whole change is rolled back rather than told half.
    if written.rowcount != 1:
        raise RuntimeError(f"membership of {subject['user_id']} vanished under the lock")
    change = changes.role_changed(ws, {**subject, "role": role}, subject["role"], how, actor)
    await tell(conn, change)
    return change


async def remove(conn: AsyncConnection, ws: WorkspaceRef, *, subject: dict[str, Any],
                 how: changes.RemovedHow, actor: Actor) -> None:
    """End the membership of `subject` (with the role they had) and tell it."""
    await conn.execute(delete(members).where(
        members.c.workspace_id == ws.id, members.c.user_id == uuid.UUID(subject["user_id"])))
    await tell(conn, changes.member_removed(ws, subject, how, actor))


async def remove_account(conn: AsyncConnection, *, user_id: uuid.UUID, actor: Actor) -> None:
    """End every membership of an account being deleted, each told as `member.removed`
    (`account_deleted`) in its workspace: exactly the rows the DELETE removed (a membership
    added meanwhile by an invite's acceptance is among them, told too)."""
    gone = (await conn.execute(
        delete(members).where(members.c.user_id == user_id)
        .returning(members.c.workspace_id, members.c.role))).all()
    if not gone:
        return
    person = (await conn.execute(
        select(users.c.email, users.c.name).where(users.c.id == user_id))).one()
    slugs = {row.id: row.slug for row in await conn.execute(
        select(workspaces.c.id, workspaces.c.slug)
        .where(workspaces.c.id.in_([r.workspace_id for r in gone])))}
    await tell(conn, *(changes.member_removed(
        WorkspaceRef(r.workspace_id, slugs[r.workspace_id]),
        changes.member(user_id, person.email, person.name, r.role), "account_deleted", actor)
        for r in sorted(gone, key=lambda r: r.workspace_id)))
