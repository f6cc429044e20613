"""The page behind the emailed link: look (GET, changes nothing), then accept or decline (POST)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import Session, get_user_by_email
from workspaces.errors import AppError
from workspaces.invites import service
from workspaces.web.deps import Conn, PasswordHashing, Tx
from workspaces.web.html import (
    SESSION_DAYS,
    CsrfChecked,
    PageUser,
    field_errors,
    redirect,
    render,
    sign_in_url,
    start_session,
)

router = APIRouter(include_in_schema=False)


async def _page(request: Request, conn: AsyncConnection, token: str, *, status: int = 200,
                values: dict[str, str] | None = None,
                errors: dict[str, str] | None = None) -> Response:
    preview = await service.preview(conn, token=token)
    return render(
        request, "invite.html", status, preview=preview, token=token,
        has_account=await get_user_by_email(conn, preview.email) is not None,
        sign_in_url=sign_in_url(f"/invites/{token}"), values=values or {}, errors=errors or {},
    )


@router.get("/invites/{token}")
async def invite_page(request: Request, token: str, conn: Conn, user: PageUser) -> Response:
    return await _page(request, conn, token)


@router.post("/invites/{token}/accept", dependencies=[CsrfChecked])
async def accept(request: Request, token: str, conn: Conn, user: PageUser) -> Response:
    if user is None:
        return redirect(request, sign_in_url(f"/invites/{token}"), "Sign in to accept.")
    try:
        async with conn.begin_nested():
            joined = await service.accept_invite(conn, token=token, user=user)
    except AppError as error:
        return await _page(request, conn, token, status=error.status,
                           errors={"form": error.message})
    return redirect(request, f"/w/{joined.workspace_slug}",
                    f"You joined {joined.workspace_name} as {joined.member.role}.")


@router.post("/invites/{token}/join", dependencies=[CsrfChecked])
async def join(request: Request, token: str, tx: Tx, passwords: PasswordHashing,
               name: Annotated[str, Form(max_length=200)] = "",
               password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Sign up with the invited address (fixed) and join, in one step."""
    try:
        created, joined, session = await service.join(
            tx, passwords, token=token, name=name, password=password,
            session=Session("browser", timedelta(days=SESSION_DAYS)))
    except AppError as error:
        async with tx.read() as conn:
            return await _page(request, conn, token, status=error.status,
                               values={"name": name}, errors=field_errors(error))
    response = redirect(request, f"/w/{joined.workspace_slug}",
                        f"Welcome, {created.name}: you joined {joined.workspace_name}.")
    start_session(request, response, session)
    return response


@router.post("/invites/{token}/decline", dependencies=[CsrfChecked])
async def decline(request: Request, token: str, conn: Conn, user: PageUser) -> Response:
    try:
        async with conn.begin_nested():
            await service.decline_invite(conn, token=token, user=user)
    except AppError as error:
        return await _page(request, conn, token, status=error.status,
                           errors={"form": error.message})
    preview = await service.preview(conn, token=token)
    return render(request, "message.html", heading="Invitation declined",
                  text=f"You declined the invitation to {preview.workspace_name}. "
                       f"{preview.inviter_name or 'The admins'} can invite you again later.")
