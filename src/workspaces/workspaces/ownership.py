"""Handing a workspace over: an owner makes another member an owner, optionally stepping down.

(Kept apart from service.py, which members/service.py imports: this reads members through
members/service.py.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.errors import Conflict, InvalidInput
from workspaces.events import changes
from workspaces.events.tell import tell
from workspaces.members import store
from workspaces.members.service import MemberInfo, get_member
from workspaces.workspaces.service import Access, WorkspaceInfo, lock_for_change

STEP_DOWN_ROLE = "admin"


@dataclass(frozen=True)
class Transferred:
    workspace: WorkspaceInfo  # with the caller's role afterwards
    new_owner: MemberInfo


async def transfer_ownership(conn: AsyncConnection, *, access: Access, user_id: uuid.UUID,
                             step_down: bool) -> Transferred:
    """Owners only. The member `user_id` becomes an owner and, with `step_down`, the caller an
    admin, in this one transaction under `lock_for_change`: a concurrent leave, removal, role
    change or transfer either committed first (and is seen here) or waits for this one, so
    the workspace never lacks an owner and nobody who left comes back. Told as a
    `member.role_changed` for each role that changed, then `workspace.ownership_transferred`
    (the one line the audit trail keeps)."""
    me = access.require_user("transfer ownership")
    access = await lock_for_change(conn, access)
    access.require("owner", "transfer ownership")
    if user_id == me.id:
        raise InvalidInput("You already own this workspace; choose another member to hand it "
                           "to.", code="transfer_to_self", field="user_id")
    target = await get_member(conn, workspace_id=access.workspace.id, user_id=user_id)
    if target.role == "owner":
        raise Conflict(f"{target.email} is already an owner of {access.workspace.name}.",
                       code="already_owner")
    old = access.workspace
    mine = STEP_DOWN_ROLE if step_down else old.role
    ref, actor = access.ref, access.actor
    await store.set_role(conn, ref, subject=changes.member(
        user_id, target.email, target.name, target.role), role="owner", how="transfer",
        actor=actor)
    if step_down:
        await store.set_role(conn, ref, subject=changes.member(
            me.id, me.email, me.name, old.role),
            role=STEP_DOWN_ROLE, how="transfer", actor=actor)
    await tell(conn, changes.ownership_transferred(
        ref, to=changes.member(user_id, target.email, target.name, "owner"),
        previous_role=target.role,
        by=changes.member(me.id, me.email, me.name, mine),
        step_down=step_down, actor=actor))
    return Transferred(
        WorkspaceInfo(old.id, old.name, old.slug, old.created_at, mine),
        MemberInfo(target.user_id, target.email, target.name, "owner", target.joined_at))
