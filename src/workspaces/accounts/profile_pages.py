"""The "Your account" page (/account) and its forms, and the page of the address-change link
(/email/<token>)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts import links, profile, service
from workspaces.accounts.events import list_account_events
from workspaces.errors import AppError
from workspaces.oauth import consents
from workspaces.web.deps import AppSettings, Caller, Conn, PasswordHashing, Tx, client_address
from workspaces.web.html import (
    NO_STORE,
    Confirmed,
    CsrfChecked,
    PageUser,
    SignedIn,
    SignInRequired,
    act,
    attempt,
    confirm_page,
    end_session,
    field_errors,
    link_refused,
    redirect,
    render,
    session_token,
)
from workspaces.web.routing import Route

router = APIRouter(route_class=Route, include_in_schema=False)


async def account_page(request: Request, conn: AsyncConnection, user: service.UserInfo, *,
                       status: int = 200, headers: dict[str, str] | None = None,
                       section: str = "", values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None) -> Response:
    """The page; a refused form (`section`) shown again with its input and errors."""
    return render(
        request, "account.html", status, headers=headers, me=user,
        sessions=await profile.list_sessions(conn, user_id=user.id,
                                             token=session_token(request)),
        apps=await consents.connected_apps(conn, user_id=user.id),
        events=await list_account_events(conn, user_id=user.id, limit=10),
        pending=await profile.pending_email_change(conn, user_id=user.id),
        values={section: values or {}}, errors={section: errors or {}})


@router.get("/account")
async def account(request: Request, conn: Conn, user: SignedIn) -> Response:
    return await account_page(request, conn, user)


@router.post("/account/name", dependencies=[CsrfChecked])
async def change_name(request: Request, conn: Conn, user: SignedIn,
                      name: Annotated[str, Form(max_length=200)] = "") -> Response:
    result = await attempt(conn, lambda: profile.change_name(conn, user=user, name=name))
    if isinstance(result, AppError):
        return await account_page(request, conn, user, status=result.status, section="name",
                                  values={"name": name}, errors=field_errors(result))
    return redirect(request, "/account", f"Your name is now {result.name}.")


async def _page_caller(request: Request, tx: Tx) -> Caller:
    """The signed-in browser, looked up in a short read and no connection kept (the forms
    that check or hash a password must hold none meanwhile)."""
    token = session_token(request)
    user = None
    if token:
        async with tx.read() as conn:
            user = await service.user_for_token(conn, token=token, kind="browser")
    request.state.user = user
    if user is None or token is None:
        raise SignInRequired("/account")
    return Caller(user, token)


PageCaller = Annotated[Caller, Depends(_page_caller)]


async def _refused(request: Request, tx: Tx, caller: Caller, error: AppError, section: str,
                   values: dict[str, str], rename: dict[str, str] | None = None) -> Response:
    """The page again after a refused password-checking form, in a short read."""
    errors = {(rename or {}).get(k, k): v for k, v in field_errors(error).items()}
    async with tx.read() as conn:
        return await account_page(request, conn, caller.user, status=error.status,
                                  headers=error.headers, section=section, values=values,
                                  errors=errors)


@router.post("/account/password", dependencies=[CsrfChecked])
async def change_password(request: Request, tx: Tx, caller: PageCaller,
                          passwords: PasswordHashing, settings: AppSettings,
                          current_password: Annotated[str, Form(max_length=1024)] = "",
                          new_password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    try:
        signed_out = await profile.change_password(
            tx, passwords, user=caller.user, token=caller.token,
            current_password=current_password, new_password=new_password,
            client=client_address(request), settings=settings)
    except AppError as error:
        return await _refused(request, tx, caller, error, "password", {})
    others = ("No other session was signed in." if signed_out == 0 else
              f"{signed_out} other session{'s were' if signed_out > 1 else ' was'} "
              "signed out.")
    return redirect(request, "/account", f"Your password was changed. {others}")


@router.post("/account/email", dependencies=[CsrfChecked])
async def change_email(request: Request, tx: Tx, caller: PageCaller,
                       passwords: PasswordHashing, settings: AppSettings,
                       email: Annotated[str, Form(max_length=320)] = "",
                       email_password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    try:
        address = await profile.request_email_change(
            tx, passwords, user=caller.user, email=email, current_password=email_password,
            client=client_address(request), settings=settings)
    except AppError as error:
        return await _refused(request, tx, caller, error, "email", {"email": email},
                              rename={"current_password": "email_password"})
    return redirect(request, "/account", f"A link to confirm the change is on its way to "
                    f"{address}. Your address stays {caller.user.email} until you open it "
                    "(within 24 hours).")


@router.post("/account/email/cancel", dependencies=[CsrfChecked])
async def cancel_email_change(request: Request, conn: Conn, user: SignedIn) -> Response:
    cancelled = await profile.cancel_email_change(conn, user=user)
    if cancelled is None:
        return redirect(request, "/account", "No address change was waiting to be confirmed.",
                        kind="error")
    return redirect(request, "/account", f"The change to {cancelled.new} was cancelled: its "
                    f"link no longer works. Your address stays {user.email}.")


@router.post("/account/sessions/{session_id}/signout", dependencies=[CsrfChecked])
async def sign_out_session(request: Request, session_id: uuid.UUID, conn: Conn,
                           user: SignedIn) -> Response:
    return await act(
        request, conn,
        lambda: profile.revoke_session(conn, user_id=user.id, session_id=session_id),
        back="/account",
        done=lambda kind: redirect(request, "/account", "The browser session was signed out."
                                   if kind == "browser" else "The API token was revoked."))


@router.post("/account/apps/{client_id}/revoke", dependencies=[CsrfChecked])
async def revoke_app(request: Request, conn: Conn, user: SignedIn,
                     client_id: Annotated[str, Path(max_length=64)]) -> Response:
    return await act(
        request, conn,
        lambda: consents.revoke_app(conn, user_id=user.id, client_id=client_id),
        back="/account",
        done=lambda name: redirect(request, "/account", f"{name} can no longer use your "
                                   "account: its access was revoked."))


@router.post("/account/delete", dependencies=[CsrfChecked])
async def delete_account(request: Request, conn: Conn, user: SignedIn,
                         confirmed: Confirmed = "") -> Response:
    if confirmed != "yes":
        return confirm_page(
            request, heading="Delete your account?", button="Delete my account",
            text=f"The account {user.email}, its sessions and API tokens and its memberships "
                 "are deleted for good. Workspaces you own with others stay with them.",
            cancel="/account")

    def deleted(_: Any) -> Response:
        response = redirect(request, "/", f"The account {user.email} was deleted.")
        end_session(request, response)
        return response

    return await act(request, conn, lambda: service.delete_account(conn, user=user),
                     back="/account", done=deleted)


@router.get("/email/{token}")
async def email_link(request: Request, conn: Conn, user: PageUser, token: str) -> Response:
    """What the link would change, and a button, to the account itself signed in: opening it
    (a GET) changes nothing."""
    old = ""
    try:
        change = await profile.check_email_link(conn, token)
        old = change.old
        links.check_holder(change.user_id, user.id if user else None, change.old)
    except AppError as error:
        return link_refused(request, error, heading="Confirm your new address", email=old,
                            back=("/account", "Go to your account"))
    return render(request, "email_change.html", token=token, change=change, headers=NO_STORE)


@router.post("/email/{token}", dependencies=[CsrfChecked])
async def confirm_email(request: Request, conn: Conn, user: SignedIn, settings: AppSettings,
                        token: str) -> Response:
    result = await attempt(conn, lambda: profile.confirm_email_change(
        conn, token=token, user_id=user.id, settings=settings))
    if isinstance(result, AppError):
        heading = "This link does not work" if result.status == 410 else "Not changed"
        return render(request, "message.html", result.status, headers=result.headers,
                      heading=heading, text=result.message,
                      back=("/account", "Go to your account"))
    return redirect(request, "/account", f"Your address is now {result.email}.")
