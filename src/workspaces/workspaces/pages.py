"""Home: my workspaces, and the form that creates one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspaces.errors import AppError
from workspaces.web.deps import AppSettings, Conn, client_address
from workspaces.web.html import CsrfChecked, SignedIn, attempt, field_errors, redirect, render
from workspaces.workspaces import service

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, conn: Conn, user: SignedIn) -> Response:
    return render(request, "home.html", workspaces=await service.list_workspaces(conn, user=user),
                  values={}, errors={})


@router.post("/workspaces", dependencies=[CsrfChecked])
async def create_workspace(request: Request, conn: Conn, user: SignedIn, settings: AppSettings,
                           name: Annotated[str, Form(max_length=200)] = "") -> Response:
    created = await attempt(conn, lambda: service.create_workspace(
        conn, name=name, owner=user,
        limit=service.creation_limit(client_address(request), settings)))
    if isinstance(created, AppError):
        return render(request, "home.html", created.status, headers=created.headers,
                      workspaces=await service.list_workspaces(conn, user=user),
                      values={"name": name}, errors=field_errors(created))
    return redirect(request, f"/w/{created.slug}", f"Created {created.name}.")
