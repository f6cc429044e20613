"""Home (my workspaces, and the form that creates one) and workspace settings -> General tab:
rename, the slug, ownership transfer and delete, each destructive step asked first on a page of
its own (no JavaScript needed)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import UserInfo
from workspaces.errors import AppError
from workspaces.invites import service as invites
from workspaces.members.service import get_member, list_members
from workspaces.web.deps import AppSettings, Conn, client_address
from workspaces.web.html import CsrfChecked, SignedIn, act, attempt, field_errors, redirect, render
from workspaces.web.routing import Route
from workspaces.workspaces import ownership, service
from workspaces.workspaces.service import Access, load_access

router = APIRouter(route_class=Route, include_in_schema=False)


async def _home(request: Request, conn: AsyncConnection, user: UserInfo, *,
                status: int = 200, headers: dict[str, str] | None = None,
                values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None) -> Response:
    """My workspaces, the invitations to my (verified) address, the create form."""
    return render(request, "home.html", status, headers=headers,
                  workspaces=await service.list_workspaces(conn, user=user),
                  invitations=await invites.invites_for(conn, user=user) if user.verified
                  else [], values=values or {}, errors=errors or {})


@router.get("/")
async def home(request: Request, conn: Conn, user: SignedIn) -> Response:
    return await _home(request, conn, user)


@router.post("/workspaces", dependencies=[CsrfChecked])
async def create_workspace(request: Request, conn: Conn, user: SignedIn, settings: AppSettings,
                           name: Annotated[str, Form(max_length=200)] = "") -> Response:
    created = await attempt(conn, lambda: service.create_workspace(
        conn, name=name, owner=user,
        limit=service.creation_limit(client_address(request), settings)))
    if isinstance(created, AppError):
        return await _home(request, conn, user, status=created.status,
                           headers=created.headers, values={"name": name},
                           errors=field_errors(created))
    return redirect(request, f"/w/{created.slug}", f"Created {created.name}.")


async def general_tab(request: Request, conn: AsyncConnection, access: Access, *,
                      status: int = 200, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None) -> Response:
    """The tab, showing each caller only what their role allows: the rename form to owners and
    admins, transfer and delete to owners."""
    candidates = []
    if access.at_least("owner"):  # who could take over: members who are not owners yet
        candidates = [m for m in await list_members(conn, workspace_id=access.workspace.id)
                      if m.role != "owner"]
    return render(request, "workspace_general.html", status, access=access, tab="general",
                  candidates=candidates, values=values or {}, errors=errors or {})


@router.get("/w/{slug}/settings")
async def settings_page(request: Request, slug: str, conn: Conn, user: SignedIn) -> Response:
    return await general_tab(request, conn, await load_access(conn, slug=slug, user=user))


@router.post("/w/{slug}/settings", dependencies=[CsrfChecked])
async def rename(request: Request, slug: str, conn: Conn, user: SignedIn,
                 name: Annotated[str, Form(max_length=200)] = "") -> Response:
    """The rename form; refused, the tab comes back at its own address with the error."""
    access = await load_access(conn, slug=slug, user=user)
    renamed = await attempt(conn, lambda: service.rename_workspace(conn, access=access,
                                                                   name=name))
    if isinstance(renamed, AppError):
        return await general_tab(request, conn, access, status=renamed.status,
                                 values={"name": name}, errors=field_errors(renamed))
    if renamed.name == access.workspace.name:
        return redirect(request, f"/w/{slug}/settings", "The name is unchanged.")
    return redirect(request, f"/w/{slug}/settings", f"Renamed to {renamed.name}.")


@router.get("/w/{slug}/settings/transfer")
async def transfer_page(request: Request, slug: str, conn: Conn, user: SignedIn,
                        user_id: uuid.UUID | None = None, step_down: str = "") -> Response:
    """The confirmation of the General tab's transfer form (a GET form: asking changes
    nothing). Without a member chosen (a reload of the POST's address), back to the tab."""
    access = await load_access(conn, slug=slug, user=user)
    if user_id is None:
        return redirect(request, f"/w/{slug}/settings")
    access.require("owner", "transfer ownership")
    target = await get_member(conn, workspace_id=access.workspace.id, user_id=user_id)
    return render(request, "workspace_transfer.html", access=access, target=target,
                  step_down=step_down == "yes")


@router.post("/w/{slug}/settings/transfer", dependencies=[CsrfChecked])
async def transfer(request: Request, slug: str, conn: Conn, user: SignedIn,
                   user_id: Annotated[uuid.UUID, Form()],
                   step_down: Annotated[str, Form(max_length=3)] = "") -> Response:
    access = await load_access(conn, slug=slug, user=user)

    def done(result: ownership.Transferred) -> Response:
        you = "; you are now an admin" if step_down == "yes" else ""
        return redirect(request, f"/w/{slug}", f"{result.new_owner.email} is now an owner of "
                                                f"{result.workspace.name}{you}.")

    return await act(request, conn, lambda: ownership.transfer_ownership(
        conn, access=access, user_id=user_id, step_down=step_down == "yes"),
        back=f"/w/{slug}/settings", done=done)


async def _delete_page(request: Request, access: Access, *, status: int = 200,
                       typed: str = "", errors: dict[str, str] | None = None) -> Response:
    return render(request, "workspace_delete.html", status, access=access,
                  values={"confirm_name": typed}, errors=errors or {})


@router.get("/w/{slug}/settings/delete")
async def delete_page(request: Request, slug: str, conn: Conn, user: SignedIn) -> Response:
    """Asks for the workspace's name before deleting it (owners)."""
    access = await load_access(conn, slug=slug, user=user)
    access.require("owner", "delete the workspace")
    return await _delete_page(request, access)


@router.post("/w/{slug}/settings/delete", dependencies=[CsrfChecked])
async def delete(request: Request, slug: str, conn: Conn, user: SignedIn,
                 confirm_name: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Deletes once the typed name matches; otherwise the page comes back with the error at
    its own address (so a reload asks again) and nothing is deleted."""
    access = await load_access(conn, slug=slug, user=user)

    async def typed_then_delete() -> None:
        service.check_typed_name(access, confirm_name)
        await service.delete_workspace(conn, access=access)

    refused = await attempt(conn, typed_then_delete)
    if isinstance(refused, AppError):
        return await _delete_page(request, access, status=refused.status, typed=confirm_name,
                                  errors=field_errors(refused))
    return redirect(request, "/", f"Deleted {access.workspace.name}.")
