"""Members and roles: owner > admin > member; a workspace always keeps an owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from typing_extensions import TypedDict

from workspaces import clock, rows
from workspaces.errors import Conflict, Forbidden, NotFound
from workspaces.events import changes
from workspaces.members import store
from workspaces.models import members, users
from workspaces.roles import RANK, check_role
from workspaces.workspaces.service import Access, lock_for_change


@dataclass(frozen=True, slots=True)
class MemberInfo:
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime


_MEMBERS = (
    select(members.c.user_id, users.c.email, users.c.name, members.c.role, members.c.created_at)
    .join(users, users.c.id == members.c.user_id)
    .where(members.c.workspace_id == bindparam("workspace_id"))
    .order_by(members.c.created_at, users.c.email)
)


async def list_members(conn: AsyncConnection, *, workspace_id: uuid.UUID) -> list[MemberInfo]:
    found = await rows.fetch(conn, _MEMBERS, {"workspace_id": workspace_id})
    return [MemberInfo(user_id, email, name, role, clock.aware(joined))
            for user_id, email, name, role, joined in found]


class MemberRow(TypedDict):
    """A member as the API lists them: `MemberInfo`'s fields, in a dict."""

    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime


async def list_member_rows(conn: AsyncConnection, *, workspace_id: uuid.UUID
                           ) -> list[MemberRow]:
    """`list_members` as dicts, for the API's JSON: a frozen dataclass costs about four times
    a dict to make, and the list of 50 was about 4% of the request (docs/benchmarks.md, issue
    22). PostgreSQL returns the times with their zone; SQLite's are made aware here."""
    found = await rows.fetch(conn, _MEMBERS, {"workspace_id": workspace_id})
    return [{"user_id": user_id, "email": email, "name": name, "role": role,
             "joined_at": joined if joined.tzinfo is not None else clock.aware(joined)}
            for user_id, email, name, role, joined in found]


async def get_member(conn: AsyncConnection, *, workspace_id: uuid.UUID,
                     user_id: uuid.UUID) -> MemberInfo:
    row = (await conn.execute(
        select(members.c.user_id, users.c.email, users.c.name, members.c.role,
               members.c.created_at)
        .join(users, users.c.id == members.c.user_id)
        .where(members.c.workspace_id == workspace_id, members.c.user_id == user_id)
    )).first()
    if row is None:
        raise NotFound("That person is not a member of this workspace.", code="member_not_found")
    return MemberInfo(row.user_id, row.email, row.name, row.role, clock.aware(row.created_at))


@dataclass(frozen=True)
class MemberActions:
    """What the caller may do to one member: the buttons of their row on the Members tab."""

    change_role: bool
    remove: bool  # someone else
    leave: bool  # the caller's own row


def _last_owner(target: MemberInfo, owners: int) -> bool:
    return target.role == "owner" and owners <= 1


def actions_on(access: Access, target: MemberInfo, *, owners: int) -> MemberActions:
    """What `change_role` and `remove_member` would let the caller do to `target`, given the
    workspace's number of owners."""
    own = access.is_me(target.user_id)
    manages = access.at_least("admin") and access.can_grant(target.role)
    keeps = not _last_owner(target, owners)
    return MemberActions(change_role=manages and keeps, remove=manages and keeps and not own,
                         leave=own and keeps)


async def _owner_count(conn: AsyncConnection, workspace_id: uuid.UUID) -> int:
    return int((await conn.execute(
        select(func.count()).select_from(members)
        .where(members.c.workspace_id == workspace_id, members.c.role == "owner")
    )).scalar_one())


async def _check_can_manage(conn: AsyncConnection, access: Access, target: MemberInfo,
                            doing: str) -> None:
    access.require("admin", doing)
    if not access.can_grant(target.role):
        raise Forbidden("Only owners can change or remove an owner.", code="owner_required")


async def _check_keeps_an_owner(conn: AsyncConnection, access: Access,
                                target: MemberInfo) -> None:
    if target.role != "owner":  # no count needed
        return
    if _last_owner(target, await _owner_count(conn, access.workspace.id)):
        raise Conflict(f"{target.email} is the last owner of {access.workspace.name}; make "
                       "someone else an owner first.", code="last_owner")


async def change_role(conn: AsyncConnection, *, access: Access, user_id: uuid.UUID,
                      role: str) -> MemberInfo:
    check_role(role)
    access = await lock_for_change(conn, access)
    target = await get_member(conn, workspace_id=access.workspace.id, user_id=user_id)
    await _check_can_manage(conn, access, target, "change roles")
    if not access.can_grant(role):
        raise Forbidden("Only owners can make someone an owner.", code="owner_required")
    if target.role == role:
        return target
    if RANK[role] < RANK[target.role]:
        await _check_keeps_an_owner(conn, access, target)
    await store.set_role(conn, access.ref, subject=_subject(target), role=role, how="changed",
                         actor=access.actor)
    return MemberInfo(target.user_id, target.email, target.name, role, target.joined_at)


async def remove_member(conn: AsyncConnection, *, access: Access, user_id: uuid.UUID) -> None:
    """Remove someone (admins and owners), or leave (anyone, for themselves)."""
    access = await lock_for_change(conn, access)
    target = await get_member(conn, workspace_id=access.workspace.id, user_id=user_id)
    leaving = access.is_me(user_id)
    if not leaving:
        await _check_can_manage(conn, access, target, "remove members")
    await _check_keeps_an_owner(conn, access, target)
    await store.remove(conn, access.ref, subject=_subject(target),
                       how="left" if leaving else "removed", actor=access.actor)


def _subject(target: MemberInfo) -> dict[str, object]:
    return changes.member(target.user_id, target.email, target.name, target.role)
