"""Workspace settings -> Members tab: the members, the invite form and the invites, and the
member actions (change role, remove or leave)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.invites import service as invites
from workspaces.members import service
from workspaces.roles import ROLES
from workspaces.web.deps import Conn
from workspaces.web.html import (
    Confirmed,
    CsrfChecked,
    SignedIn,
    act,
    confirm_page,
    redirect,
    render,
)
from workspaces.web.routing import Route
from workspaces.workspaces.service import Access, load_access

router = APIRouter(route_class=Route, include_in_schema=False)


async def members_tab(request: Request, conn: AsyncConnection, access: Access, *,
                      status: int = 200, headers: dict[str, str] | None = None,
                      cursor: str | None = None,
                      values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None) -> Response:
    """The tab, showing each caller only the actions their role allows."""
    can_manage = access.at_least("admin")
    page: list[invites.InviteInfo] = []
    next_cursor = None
    if can_manage:
        page, next_cursor = await invites.list_invites(conn, access=access, status=None,
                                                       limit=50, cursor=cursor)
    people = await service.list_members(conn, workspace_id=access.workspace.id)
    owners = sum(m.role == "owner" for m in people)
    rows = [(m, service.actions_on(access, m, owners=owners)) for m in people]
    return render(
        request, "workspace.html", status, headers=headers, access=access, tab="members",
        can_manage=can_manage, members=rows,
        can_leave=any(actions.leave for _, actions in rows),
        invites=page, next_cursor=next_cursor,
        assignable=[r for r in reversed(ROLES) if access.can_grant(r)],
        values=values or {}, errors=errors or {},
    )


@router.get("/w/{slug}")
async def workspace(request: Request, slug: str, conn: Conn, user: SignedIn,
                    cursor: str | None = None) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    return await members_tab(request, conn, access, cursor=cursor)


@router.post("/w/{slug}/members/{user_id}/role", dependencies=[CsrfChecked])
async def change_role(request: Request, slug: str, user_id: uuid.UUID, conn: Conn,
                      user: SignedIn, role: Annotated[str, Form(max_length=16)]) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    return await act(
        request, conn, lambda: service.change_role(conn, access=access, user_id=user_id,
                                                   role=role), back=f"/w/{slug}",
        done=lambda changed: redirect(request, f"/w/{slug}",
                                      f"{changed.email} is now {changed.role}."))


@router.post("/w/{slug}/members/{user_id}/remove", dependencies=[CsrfChecked])
async def remove(request: Request, slug: str, user_id: uuid.UUID, conn: Conn,
                 user: SignedIn, confirmed: Confirmed = "") -> Response:
    """Remove someone, or leave (your own row), once confirmed."""
    access = await load_access(conn, slug=slug, user=user)
    left = access.is_me(user_id)
    if confirmed != "yes":
        name = access.workspace.name
        if left:
            return confirm_page(request, heading=f"Leave {name}?", button="Leave",
                                text=f"You will lose access to {name} until someone invites "
                                     "you again.", cancel=f"/w/{slug}")
        target = await service.get_member(conn, workspace_id=access.workspace.id,
                                          user_id=user_id)
        return confirm_page(request, heading=f"Remove {target.email}?", button="Remove",
                            text=f"{target.name} ({target.email}) will lose access to {name}.",
                            cancel=f"/w/{slug}")
    return await act(
        request, conn, lambda: service.remove_member(conn, access=access, user_id=user_id),
        back=f"/w/{slug}",
        done=lambda _: redirect(request, "/", "You left the workspace.") if left
        else redirect(request, f"/w/{slug}", "Member removed."))
