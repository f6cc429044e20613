"""Sign up, sign in and sign out pages (browser sessions in a cookie, stored hashed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspaces.accounts import links, recovery, service, verification
from workspaces.errors import AppError
from workspaces.web.deps import AppSettings, Conn, PasswordHashing, Tx, client_address
from workspaces.web.html import (
    NEXT_MAX,
    NO_STORE,
    CsrfChecked,
    PageUser,
    SignedIn,
    act,
    attempt,
    browser_session,
    end_session,
    field_errors,
    filled,
    link_refused,
    redirect,
    render,
    safe_next,
    session_token,
    start_session,
)
from workspaces.web.routing import Route

router = APIRouter(route_class=Route, include_in_schema=False)


def _signed_in(request: Request, user: service.UserInfo, token: str, target: str,
               message: str) -> Response:
    response = redirect(request, target, message)
    start_session(request, response, token)
    return response


@router.get("/signin")
async def signin_page(request: Request, user: PageUser, next: str = "/",
                      email: str = "") -> Response:
    """`email`: a hint to fill in (an app's `login_hint`); a value the last step left wins."""
    values = {"email": email[:320]} if email else {}
    return render(request, "signin.html", next_url=safe_next(next),
                  values=values | filled(request), errors={})


@router.post("/signin", dependencies=[CsrfChecked])
async def signin(request: Request, tx: Tx, passwords: PasswordHashing, settings: AppSettings,
                 email: Annotated[str, Form(max_length=320)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "",
                 next: Annotated[str, Form(max_length=NEXT_MAX)] = "/") -> Response:
    try:
        found, token = await service.sign_in(tx, passwords, email=email, password=password,
                                             client=client_address(request), settings=settings,
                                             session=browser_session(request))
    except AppError as error:
        return render(request, "signin.html", error.status, headers=error.headers,
                      next_url=safe_next(next), values={"email": email},
                      errors={"form": error.message})
    return _signed_in(request, found, token, safe_next(next), f"Signed in as {found.email}.")


@router.get("/signup")
async def signup_page(request: Request, user: PageUser, next: str = "/") -> Response:
    return render(request, "signup.html", next_url=safe_next(next), values={}, errors={})


@router.post("/signup", dependencies=[CsrfChecked])
async def signup(request: Request, tx: Tx, passwords: PasswordHashing, settings: AppSettings,
                 name: Annotated[str, Form(max_length=200)] = "",
                 email: Annotated[str, Form(max_length=320)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "",
                 next: Annotated[str, Form(max_length=NEXT_MAX)] = "/") -> Response:
    try:
        created, token = await service.sign_up(
            tx, passwords, email=email, password=password, name=name,
            client=client_address(request), settings=settings, session=browser_session(request))
    except AppError as error:
        return render(request, "signup.html", error.status, headers=error.headers,
                      next_url=safe_next(next), values={"name": name, "email": email},
                      errors=field_errors(error))
    return _signed_in(request, created, token, safe_next(next), f"Welcome, {created.name}.")


@router.get("/password-reset")
async def password_reset_page(request: Request, user: PageUser) -> Response:
    return render(request, "password_reset.html", values={}, errors={})


@router.post("/password-reset", dependencies=[CsrfChecked])
async def password_reset(request: Request, tx: Tx, settings: AppSettings,
                         email: Annotated[str, Form(max_length=320)] = "") -> Response:
    try:
        await recovery.request_reset(tx, email=email, client=client_address(request),
                                     settings=settings)
    except AppError as error:
        return render(request, "password_reset.html", error.status, headers=error.headers,
                      values={"email": email}, errors=field_errors(error))
    return render(request, "message.html", heading="Check your email",
                  text=f"If {email.strip()} has an account, a link to choose a new password is "
                       "on its way. It works once, for one hour.",
                  back=("/signin", "Back to sign in"))




async def _reset_form(request: Request, conn: Conn, token: str, *, status: int = 200,
                      errors: dict[str, str] | None = None) -> Response:
    try:
        link = await recovery.check_link(conn, token)
    except AppError as error:
        return render(request, "message.html", error.status, heading="This link does not work",
                      text=error.message, back=("/password-reset", "Ask for a new link"),
                      headers=NO_STORE)
    signed_in = getattr(request.state, "user", None)
    other = signed_in.email if signed_in and signed_in.id != link.user_id else None
    return render(request, "reset_password.html", status, token=token, email=link.email,
                  errors=errors or {}, other_account=other, headers=NO_STORE)


@router.get("/reset/{token}")
async def reset_page(request: Request, conn: Conn, user: PageUser, token: str) -> Response:
    return await _reset_form(request, conn, token)


@router.post("/reset/{token}", dependencies=[CsrfChecked])
async def reset(request: Request, tx: Tx, passwords: PasswordHashing, settings: AppSettings,
                token: str, password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """No request-wide connection (no PageUser): the password is hashed with none open."""
    try:
        address = await recovery.reset_password(tx, passwords, token=token, password=password,
                                                settings=settings)
    except AppError as error:
        if error.status != 422:
            heading = "This link does not work" if error.status == 410 else "Please try again"
            return render(request, "message.html", error.status, headers=error.headers,
                          heading=heading, text=error.message)
        async with tx.read() as conn:
            return await _reset_form(request, conn, token, status=422,
                                     errors=field_errors(error))
    # This browser's own session ends too, whichever account it was (one browser may hold
    # another account's session: the page said so).
    own = session_token(request)
    if own:
        async with tx.write() as conn:
            await service.revoke_token(conn, token=own)
    response = redirect(request, "/signin", f"Your password was changed: sign in as {address} "
                        "with the new one. Every other session was signed out.",
                        fill={"email": address})
    response.headers.update(NO_STORE)
    end_session(request, response)
    return response


def _not_me(email: str) -> str:
    return (f"Did you not create an account with {email}? Then someone else did: take it "
            "over, since the reset link goes to your mailbox.")


@router.get("/verify/{token}")
async def verify_page(request: Request, conn: Conn, user: PageUser, token: str) -> Response:
    """Looking changes nothing (mail scanners open links): the button confirms, signed in as
    the account; anyone else is offered to sign in, or to take the account over."""
    email = ""
    try:
        user_id, email = await verification.check_link(conn, token)
        links.check_holder(user_id, user.id if user else None, email)
    except AppError as error:
        return link_refused(request, error, heading="Confirm your address", email=email,
                            not_me=_not_me(email))
    return render(request, "confirm.html", heading="Confirm your address",
                  text=f"Confirm that {email} is your address.", button="Confirm my address",
                  button_class="primary", action=request.url.path, cancel="/",
                  headers=NO_STORE)


@router.post("/verify/{token}", dependencies=[CsrfChecked])
async def verify(request: Request, conn: Conn, user: SignedIn, token: str) -> Response:
    done = await attempt(conn, lambda: verification.verify_email(conn, token=token,
                                                                 user_id=user.id))
    if isinstance(done, AppError):
        return render(request, "message.html", done.status, heading="This link does not work",
                      text=done.message, headers=NO_STORE)
    return redirect(request, "/", f"Thank you: {done} is verified.")


@router.post("/verification/resend", dependencies=[CsrfChecked])
async def resend_verification(request: Request, conn: Conn, user: SignedIn,
                              settings: AppSettings) -> Response:
    return await act(
        request, conn, lambda: verification.resend_verification(conn, user_id=user.id,
                                                                settings=settings),
        back="/", done=lambda sent: redirect(request, "/", f"A new confirmation link is on its "
                                             f"way to {sent}. It works once, for two days."))


@router.post("/signout", dependencies=[CsrfChecked])
async def signout(request: Request, conn: Conn,
                  next: Annotated[str, Form(max_length=NEXT_MAX)] = "/") -> Response:
    token = session_token(request)
    if token:
        await service.revoke_token(conn, token=token)
    response = redirect(request, safe_next(next), "You are signed out.")
    end_session(request, response)
    return response
