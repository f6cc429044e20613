"""Home (my workspaces) and workspace settings -> Members tab, with its forms."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspaces.errors import AppError
from workspaces.invites import service as invites
from workspaces.members import service as members
from workspaces.roles import ROLES
from workspaces.web.deps import AppSettings, Conn, client_address
from workspaces.web.html import CsrfChecked, SignedIn, field_errors, redirect, render
from workspaces.workspaces import service
from workspaces.workspaces.service import Access, load_access

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, conn: Conn, user: SignedIn) -> Response:
    return render(request, "home.html", workspaces=await service.list_workspaces(conn, user=user),
                  values={}, errors={})


@router.post("/workspaces", dependencies=[CsrfChecked])
async def create_workspace(request: Request, conn: Conn, user: SignedIn, settings: AppSettings,
                           name: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        async with conn.begin_nested():
            created = await service.create_workspace(
                conn, name=name, owner=user,
                limit=service.creation_limit(client_address(request), settings))
    except AppError as error:
        return render(request, "home.html", error.status,
                      workspaces=await service.list_workspaces(conn, user=user),
                      values={"name": name}, errors=field_errors(error))
    return redirect(request, f"/w/{created.slug}", f"Created {created.name}.")


async def _members_tab(request: Request, conn: Conn, access: Access, *, status: int = 200,
                       cursor: str | None = None, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None) -> Response:
    can_manage = access.at_least("admin")
    page: list[invites.InviteInfo] = []
    next_cursor = None
    if can_manage:
        page, next_cursor = await invites.list_invites(conn, access=access, status=None,
                                                       limit=50, cursor=cursor)
    people = await members.list_members(conn, workspace_id=access.workspace.id)
    return render(
        request, "workspace.html", status, access=access, can_manage=can_manage,
        members=people, owner_count=sum(m.role == "owner" for m in people),
        invites=page, next_cursor=next_cursor,
        assignable=[r for r in reversed(ROLES) if access.can_grant(r)],
        values=values or {}, errors=errors or {},
    )


@router.get("/w/{slug}")
async def workspace(request: Request, slug: str, conn: Conn, user: SignedIn,
                    cursor: str | None = None) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    return await _members_tab(request, conn, access, cursor=cursor)


@router.post("/w/{slug}/invites", dependencies=[CsrfChecked])
async def create_invite(request: Request, slug: str, conn: Conn, user: SignedIn,
                        settings: AppSettings,
                        email: Annotated[str, Form(max_length=320)] = "",
                        role: Annotated[str, Form(max_length=16)] = "member") -> Response:
    access = await load_access(conn, slug=slug, user=user)
    try:
        async with conn.begin_nested():
            issued = await invites.create_invite(conn, access=access, email=email, role=role,
                                                 expires_in_days=None, settings=settings)
    except AppError as error:
        return await _members_tab(request, conn, access, status=error.status,
                                  values={"email": email, "role": role},
                                  errors=field_errors(error))
    return redirect(request, f"/w/{slug}", f"Invite sent to {issued.invite.email}.",
                    link=issued.accept_url)


async def _act(request: Request, slug: str, conn: Conn, user: Any, action: Any,
               done: Callable[[Any], str]) -> Response:
    """Run one button's action; success or failure comes back as a message on the tab."""
    access = await load_access(conn, slug=slug, user=user)
    try:
        async with conn.begin_nested():
            result = await action(access)
    except AppError as error:
        return redirect(request, f"/w/{slug}", error.message, kind="error")
    link = getattr(result, "accept_url", None)
    target = "/" if result == "left" else f"/w/{slug}"
    return redirect(request, target, done(result), link=link)


@router.post("/w/{slug}/invites/{invite_id}/resend", dependencies=[CsrfChecked])
async def resend(request: Request, slug: str, invite_id: uuid.UUID, conn: Conn,
                 user: SignedIn, settings: AppSettings) -> Response:
    return await _act(request, slug, conn, user, lambda access: invites.resend_invite(
        conn, access=access, invite_id=invite_id, settings=settings),
        lambda r: f"Invite re-sent to {r.invite.email}; the old link no longer works.")


@router.post("/w/{slug}/invites/{invite_id}/revoke", dependencies=[CsrfChecked])
async def revoke(request: Request, slug: str, invite_id: uuid.UUID, conn: Conn,
                 user: SignedIn) -> Response:
    return await _act(request, slug, conn, user, lambda access: invites.revoke_invite(
        conn, access=access, invite_id=invite_id), lambda r: f"Invite to {r.email} revoked.")


@router.post("/w/{slug}/members/{user_id}/role", dependencies=[CsrfChecked])
async def change_role(request: Request, slug: str, user_id: uuid.UUID, conn: Conn,
                      user: SignedIn, role: Annotated[str, Form(max_length=16)]) -> Response:
    return await _act(request, slug, conn, user, lambda access: members.change_role(
        conn, access=access, user_id=user_id, role=role),
        lambda r: f"{r.email} is now {r.role}.")


@router.post("/w/{slug}/members/{user_id}/remove", dependencies=[CsrfChecked])
async def remove(request: Request, slug: str, user_id: uuid.UUID, conn: Conn,
                 user: SignedIn) -> Response:
    async def act(access: Access) -> str:
        await members.remove_member(conn, access=access, user_id=user_id)
        return "left" if user_id == access.user.id else "removed"

    return await _act(request, slug, conn, user, act,
                      lambda r: "You left the workspace." if r == "left" else "Member removed.")
