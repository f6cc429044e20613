"""Home: my workspaces, and the form that creates one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import UserInfo
from workspaces.errors import AppError
from workspaces.invites import service as invites
from workspaces.web.deps import AppSettings, Conn, client_address
from workspaces.web.html import CsrfChecked, SignedIn, attempt, field_errors, redirect, render
from workspaces.workspaces import service

router = APIRouter(include_in_schema=False)


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
