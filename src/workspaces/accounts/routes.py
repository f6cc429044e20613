"""/api/auth and /api/me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from workspaces.accounts import recovery, service, verification
from workspaces.accounts.schemas import (
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    SignIn,
    SignUp,
    TokenRead,
    UserRead,
    VerificationSent,
    Verified,
    VerifyEmail,
)
from workspaces.web.deps import (
    AppSettings,
    Conn,
    CurrentUser,
    PasswordHashing,
    ScopedUser,
    TokenUser,
    Tx,
    api_session,
    client_address,
)
from workspaces.web.routing import Route
from workspaces.web.schemas import errors

router = APIRouter(route_class=Route, prefix="/api", tags=["accounts"],
                   responses=errors(400, 422, 503))


@router.post("/auth/signup", status_code=201, response_model=TokenRead, responses=errors(409, 429))
async def signup(body: SignUp, request: Request, tx: Tx, passwords: PasswordHashing,
                 settings: AppSettings) -> TokenRead:
    """Create an account and return a bearer token for it (attempts are rate limited)."""
    user, token = await service.sign_up(
        tx, passwords, email=body.email, password=body.password, name=body.name,
        client=client_address(request), settings=settings, session=api_session(request))
    return TokenRead(token=token, user=UserRead.model_validate(user))


@router.post("/auth/login", response_model=TokenRead, responses=errors(401, 429))
async def login(body: SignIn, request: Request, tx: Tx, passwords: PasswordHashing,
                settings: AppSettings) -> TokenRead:
    """Exchange email and password for a bearer token (failed attempts are rate limited)."""
    user, token = await service.sign_in(
        tx, passwords, email=body.email, password=body.password,
        client=client_address(request), settings=settings, session=api_session(request))
    return TokenRead(token=token, user=UserRead.model_validate(user))


@router.post("/auth/password-reset", status_code=202, responses=errors(429))
async def request_password_reset(body: PasswordResetRequest, request: Request, tx: Tx,
                                 settings: AppSettings) -> PasswordResetAccepted:
    """Email a one-time link to choose a new password, valid for an hour. The answer is the
    same 202 whether or not the address has an account; a mailbox gets a few such emails an
    hour."""
    await recovery.request_reset(tx, email=body.email, client=client_address(request),
                                 settings=settings)
    return PasswordResetAccepted()


@router.post("/auth/password-reset/confirm", status_code=204, responses=errors(410))
async def confirm_password_reset(body: PasswordResetConfirm, tx: Tx,
                                 passwords: PasswordHashing, settings: AppSettings) -> Response:
    """Set a new password with the emailed link's token. Every session and API token of the
    account is signed out, and a notice is emailed."""
    await recovery.reset_password(tx, passwords, token=body.token, password=body.password,
                                  settings=settings)
    return Response(status_code=204)


@router.post("/auth/verify", response_model=Verified, responses=errors(401, 403, 410))
async def verify_email(body: VerifyEmail, conn: Conn, user: CurrentUser) -> Verified:
    """Confirm your address with the token of the link mailed to it, signed in as the account
    (the mailbox alone is not enough: 403 `link_for_another_account`). Works once; 410
    `verify_link_invalid` for a dead link."""
    return Verified(email=await verification.verify_email(conn, token=body.token,
                                                          user_id=user.id))


@router.post("/me/verification", status_code=202, response_model=VerificationSent,
             responses=errors(401, 409, 429))
async def resend_verification(conn: Conn, user: CurrentUser,
                              settings: AppSettings) -> VerificationSent:
    """Mail a new confirmation link to your address (older links stop working); a few an
    hour. 409 `already_verified` when it is."""
    sent = await verification.resend_verification(conn, user_id=user.id, settings=settings)
    return VerificationSent(email=sent)


@router.post("/auth/logout", status_code=204, responses=errors(401))
async def logout(request: Request, conn: Conn, user: CurrentUser) -> Response:
    """Revoke the token this request was made with."""
    token = request.headers["authorization"].partition(" ")[2].strip()
    await service.revoke_token(conn, token=token)
    return Response(status_code=204)


@router.delete("/me", status_code=204, responses=errors(401, 409))
async def delete_me(conn: Conn, user: CurrentUser) -> Response:
    """Delete your account (not while you are the only owner of a workspace)."""
    await service.delete_account(conn, user=user)
    return Response(status_code=204)


@router.get("/me", response_model=UserRead, responses=errors(401, 403))
async def me(caller: Annotated[TokenUser, ScopedUser("openid")]) -> UserRead:
    """Your account; also with an app's access token that has the scopes `openid`, `email`
    and `profile` (it shows the address and name)."""
    return UserRead.model_validate(caller.user)
