"""/api/me: the profile (name, password, address, sessions, security trail); and
/api/auth/email/confirm, which the address-change link's token alone authorises."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter

from workspaces.accounts import profile
from workspaces.accounts.events import list_account_events
from workspaces.accounts.schemas import (
    AccountEventRead,
    EmailChangeConfirm,
    EmailChangeRequest,
    EmailChangeRequested,
    NameChange,
    PasswordChange,
    PasswordChanged,
    SessionRead,
    UserRead,
)
from workspaces.web.deps import (
    ApiCaller,
    AppSettings,
    Conn,
    Credentials,
    CurrentUser,
    PasswordHashing,
    Tx,
    client_address,
)
from workspaces.web.routing import Route
from workspaces.web.schemas import errors, json_response

router = APIRouter(route_class=Route, prefix="/api", tags=["accounts"],
                   responses=errors(400, 422, 503))

_SESSIONS = TypeAdapter(list[profile.SessionInfo])


@router.patch("/me", response_model=UserRead, responses=errors(401))
async def change_name(body: NameChange, conn: Conn, user: CurrentUser) -> UserRead:
    """Change your name (422 `invalid_name`)."""
    return UserRead.model_validate(await profile.change_name(conn, user=user, name=body.name))


@router.post("/me/password", response_model=PasswordChanged, responses=errors(401, 403, 429))
async def change_password(body: PasswordChange, request: Request, tx: Tx, caller: ApiCaller,
                          passwords: PasswordHashing, settings: AppSettings) -> PasswordChanged:
    """Change your password, giving the current one (403 `wrong_password`; wrong ones count
    against the failed sign-in limits, 429). Every other session and API token of the account
    is signed out, the token of this request stays valid, and a notice is emailed."""
    signed_out = await profile.change_password(
        tx, passwords, user=caller.user, token=caller.token,
        current_password=body.current_password, new_password=body.new_password,
        client=client_address(request), settings=settings)
    return PasswordChanged(signed_out=signed_out)


@router.post("/me/email", status_code=202, response_model=EmailChangeRequested,
             responses=errors(401, 403, 409, 429))
async def request_email_change(body: EmailChangeRequest, request: Request, tx: Tx,
                               caller: ApiCaller, passwords: PasswordHashing,
                               settings: AppSettings) -> EmailChangeRequested:
    """Ask to change your address, giving your password: a link valid for 24 hours goes to the
    new address, and the change happens when it is opened. Refused for an address that has an
    account (409 `email_taken`) or looks like one (422 `email_confusable`)."""
    address = await profile.request_email_change(
        tx, passwords, user=caller.user, email=body.email,
        current_password=body.current_password, client=client_address(request),
        settings=settings)
    return EmailChangeRequested(
        email=address, message=f"A link to confirm the change is on its way to {address}. "
                               "It works once, for 24 hours.")


@router.post("/auth/email/confirm", response_model=UserRead,
             responses=errors(401, 403, 409, 410))
async def confirm_email_change(body: EmailChangeConfirm, conn: Conn, user: CurrentUser,
                               settings: AppSettings) -> UserRead:
    """Make the new address the account's, verified, with the emailed link's token, signed in
    as the account (403 `link_for_another_account`: the link alone is not enough). 410
    `email_link_invalid` for a link that expired, was used, replaced or cancelled; 409
    `email_taken` if the address got an account meanwhile. A notice goes to the old address."""
    changed = await profile.confirm_email_change(conn, token=body.token, user_id=user.id,
                                                 settings=settings)
    return UserRead.model_validate(changed)


@router.delete("/me/email", status_code=204, responses=errors(401))
async def cancel_email_change(conn: Conn, user: CurrentUser) -> Response:
    """Cancel a pending address change: the links mailed for it stop working."""
    await profile.cancel_email_change(conn, user=user)
    return Response(status_code=204)


@router.get("/me/sessions", response_model=list[SessionRead], responses=errors(401))
async def sessions(conn: Conn, user: CurrentUser, credentials: Credentials) -> Response:
    """Your live browser sessions and API tokens (never the tokens themselves)."""
    token = credentials.credentials if credentials else None
    return json_response(_SESSIONS, await profile.list_sessions(conn, user_id=user.id,
                                                                token=token))


@router.delete("/me/sessions/{session_id}", status_code=204, responses=errors(401, 404))
async def revoke_session(session_id: uuid.UUID, conn: Conn, user: CurrentUser) -> Response:
    """Sign out one of your sessions or API tokens (404 `session_not_found` for one that is
    not yours, not live, or unknown)."""
    await profile.revoke_session(conn, user_id=user.id, session_id=session_id)
    return Response(status_code=204)


@router.get("/me/events", response_model=list[AccountEventRead], responses=errors(401))
async def events(conn: Conn, user: CurrentUser,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[AccountEventRead]:
    """Your account's security trail, newest first: sign-up, password and address changes,
    sessions signed out."""
    return [AccountEventRead.model_validate(entry)
            for entry in await list_account_events(conn, user_id=user.id, limit=limit)]
