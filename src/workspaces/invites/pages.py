"""Invites in the browser: the page behind the emailed link (look with GET, which changes
nothing; accept, join or decline with POST), and the Members tab's invite actions (send,
re-send, revoke)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import get_user_by_email
from workspaces.errors import AppError
from workspaces.invites import service
from workspaces.members.pages import members_tab
from workspaces.web.deps import AppSettings, Conn, PasswordHashing, Tx
from workspaces.web.html import (
    Confirmed,
    CsrfChecked,
    PageUser,
    SignedIn,
    act,
    attempt,
    browser_session,
    confirm_page,
    field_errors,
    redirect,
    render,
    sign_in_url,
    start_session,
)
from workspaces.web.routing import Route
from workspaces.workspaces.service import load_access

router = APIRouter(route_class=Route, include_in_schema=False)


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
    joined = await attempt(conn, lambda: service.accept_invite(conn, token=token, user=user))
    if isinstance(joined, AppError):
        return await _page(request, conn, token, status=joined.status,
                           errors={"form": joined.message})
    return redirect(request, f"/w/{joined.workspace_slug}",
                    f"You joined {joined.workspace_name} as {joined.member.role}.")


@router.post("/invites/{token}/join", dependencies=[CsrfChecked])
async def join(request: Request, token: str, tx: Tx, passwords: PasswordHashing,
               settings: AppSettings, name: Annotated[str, Form(max_length=200)] = "",
               password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Sign up with the invited address (fixed) and join, in one step."""
    try:
        created, joined, session = await service.join(
            tx, passwords, token=token, name=name, password=password,
            session=browser_session(request), settings=settings)
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
    declined = await attempt(conn, lambda: service.decline_invite(conn, token=token, user=user))
    if isinstance(declined, AppError):
        return await _page(request, conn, token, status=declined.status,
                           errors={"form": declined.message})
    preview = await service.preview(conn, token=token)
    return render(request, "message.html", heading="Invitation declined",
                  text=f"You declined the invitation to {preview.workspace_name}. "
                       f"{preview.inviter or 'The admins'} can invite you again later.")


@router.post("/w/{slug}/invites", dependencies=[CsrfChecked])
async def create_invite(request: Request, slug: str, conn: Conn, user: SignedIn,
                        settings: AppSettings,
                        email: Annotated[str, Form(max_length=320)] = "",
                        role: Annotated[str, Form(max_length=16)] = "member") -> Response:
    """The Members tab's invite form: refused, the tab comes back with the form's errors."""
    access = await load_access(conn, slug=slug, user=user)
    issued = await attempt(conn, lambda: service.create_invite(
        conn, access=access, email=email, role=role, expires_in_days=None, settings=settings))
    if isinstance(issued, AppError):
        return await members_tab(request, conn, access, status=issued.status,
                                 headers=issued.headers, values={"email": email, "role": role},
                                 errors=field_errors(issued))
    return redirect(request, f"/w/{slug}", f"Invite sent to {issued.invite.email}.",
                    link=issued.accept_url)


@router.post("/w/{slug}/invites/{invite_id}/resend", dependencies=[CsrfChecked])
async def resend(request: Request, slug: str, invite_id: uuid.UUID, conn: Conn,
                 user: SignedIn, settings: AppSettings) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    return await act(
        request, conn, lambda: service.resend_invite(conn, access=access, invite_id=invite_id,
                                                     settings=settings), back=f"/w/{slug}",
        done=lambda issued: redirect(request, f"/w/{slug}", f"Invite re-sent to "
                                     f"{issued.invite.email}; the old link no longer works.",
                                     link=issued.accept_url))


@router.post("/w/{slug}/invites/{invite_id}/revoke", dependencies=[CsrfChecked])
async def revoke(request: Request, slug: str, invite_id: uuid.UUID, conn: Conn,
                 user: SignedIn, confirmed: Confirmed = "") -> Response:
    access = await load_access(conn, slug=slug, user=user)
    if confirmed != "yes":
        invite = await service.get_invite(conn, workspace_id=access.workspace.id,
                                          invite_id=invite_id)
        return confirm_page(request, heading=f"Revoke the invite to {invite.email}?",
                            button="Revoke", cancel=f"/w/{slug}",
                            text="The emailed link stops working at once. You can invite "
                                 "the address again later.")
    return await act(
        request, conn, lambda: service.revoke_invite(conn, access=access, invite_id=invite_id),
        back=f"/w/{slug}",
        done=lambda revoked: redirect(request, f"/w/{slug}", f"Invite to {revoked.email} revoked."))


@router.post("/invitations/{invite_id}/accept", dependencies=[CsrfChecked])
async def accept_for_me(request: Request, invite_id: uuid.UUID, conn: Conn,
                        user: SignedIn) -> Response:
    """Home's "Invitations for you": accept without the link (the address is verified)."""
    return await act(
        request, conn, lambda: service.accept_for_user(conn, invite_id=invite_id, user=user),
        back="/", done=lambda joined: redirect(
            request, f"/w/{joined.workspace_slug}",
            f"You joined {joined.workspace_name} as {joined.member.role}."))


@router.post("/invitations/{invite_id}/decline", dependencies=[CsrfChecked])
async def decline_for_me(request: Request, invite_id: uuid.UUID, conn: Conn,
                         user: SignedIn) -> Response:
    return await act(
        request, conn, lambda: service.decline_for_user(conn, invite_id=invite_id, user=user),
        back="/", done=lambda declined: redirect(
            request, "/", f"You declined the invitation to {declined.workspace_name}."))
