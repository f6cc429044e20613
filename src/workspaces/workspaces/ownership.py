"""Handing a workspace over: an owner makes another member an owner, optionally stepping down.

(Kept apart from service.py, which members/service.py imports: this reads members through
members/service.py.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.audit.service import record
from workspaces.errors import Conflict, InvalidInput
from workspaces.members.service import MemberInfo, get_member
from workspaces.models import members
from workspaces.workspaces.service import Access, WorkspaceInfo, lock_for_change

STEP_DOWN_ROLE = "admin"


@dataclass(frozen=True)
class Transferred:
    workspace: WorkspaceInfo  # with the caller's role afterwards
    new_owner: MemberInfo


async def _set_role(conn: AsyncConnection, access: Access, user_id: uuid.UUID, role: str) -> None:
    changed = await conn.execute(
        update(members)
        .where(members.c.workspace_id == access.workspace.id, members.c.user_id == user_id)
        .values(role=role)
    )
    # Under the lock both memberships were just read; anything else is a bug, and the whole
    # transfer is rolled back rather than leaving a workspace without its owner.
    if changed.rowcount != 1:
        raise RuntimeError(f"membership of {user_id} vanished under the lock")


async def transfer_ownership(conn: AsyncConnection, *, access: Access, user_id: uuid.UUID,
                             step_down: bool) -> Transferred:
    """Owners only. The member `user_id` becomes an owner and, with `step_down`, the caller an
    admin, in this one transaction under `lock_for_change`: a concurrent leave, removal, role
    change or transfer either committed first (and is seen here) or waits for this one, so
    the workspace never lacks an owner and nobody who left comes back. Audited as
    `ownership_transferred`."""
    access = await lock_for_change(conn, access)
    access.require("owner", "transfer ownership")
    if user_id == access.user.id:
        raise InvalidInput("You already own this workspace; choose another member to hand it "
                           "to.", code="transfer_to_self", field="user_id")
    target = await get_member(conn, workspace_id=access.workspace.id, user_id=user_id)
    if target.role == "owner":
        raise Conflict(f"{target.email} is already an owner of {access.workspace.name}.",
                       code="already_owner")
    await _set_role(conn, access, user_id, "owner")
    if step_down:
        await _set_role(conn, access, access.user.id, STEP_DOWN_ROLE)
    await record(conn, workspace_id=access.workspace.id, actor_id=access.user.id,
                 action="ownership_transferred", target_type="member", target_id=user_id,
                 target_email=target.email,
                 detail={"step_down": step_down, "from": target.role})
    old = access.workspace
    mine = STEP_DOWN_ROLE if step_down else old.role
    return Transferred(
        WorkspaceInfo(old.id, old.name, old.slug, old.created_at, mine),
        MemberInfo(target.user_id, target.email, target.name, "owner", target.joined_at))
