"""Sign up, sign in and sign out pages (browser sessions in a cookie, stored hashed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workspaces.accounts import service
from workspaces.errors import AppError
from workspaces.web.deps import AppSettings, Conn, client_address
from workspaces.web.html import (
    SESSION_COOKIE,
    SESSION_DAYS,
    CsrfChecked,
    PageUser,
    end_session,
    field_errors,
    redirect,
    render,
    start_session,
)

router = APIRouter(include_in_schema=False)


def _safe_next(next_url: str | None) -> str:
    """Only same-site paths: never redirect to another host after sign-in."""
    if next_url and next_url.startswith("/") and not next_url.startswith("//"):
        return next_url
    return "/"


async def _session(conn: Conn, request: Request, user: service.UserInfo, target: str,
                   message: str) -> Response:
    token = await service.issue_token(conn, user_id=user.id, kind="browser",
                                      ttl=timedelta(days=SESSION_DAYS))
    response = redirect(request, target, message)
    start_session(request, response, token)
    return response


@router.get("/signin")
async def signin_page(request: Request, user: PageUser, next: str = "/") -> Response:
    return render(request, "signin.html", next_url=_safe_next(next), values={}, errors={})


@router.post("/signin", dependencies=[CsrfChecked])
async def signin(request: Request, conn: Conn, user: PageUser, settings: AppSettings,
                 email: Annotated[str, Form(max_length=320)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "",
                 next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    try:
        found = await service.sign_in(conn, email=email, password=password,
                                      client=client_address(request), settings=settings)
    except AppError as error:  # rendered, not raised: a counted failed attempt commits
        return render(request, "signin.html", error.status, next_url=_safe_next(next),
                      values={"email": email}, errors={"form": error.message})
    return await _session(conn, request, found, _safe_next(next), f"Signed in as {found.email}.")


@router.get("/signup")
async def signup_page(request: Request, user: PageUser) -> Response:
    return render(request, "signup.html", values={}, errors={})


@router.post("/signup", dependencies=[CsrfChecked])
async def signup(request: Request, conn: Conn, user: PageUser,
                 name: Annotated[str, Form(max_length=200)] = "",
                 email: Annotated[str, Form(max_length=320)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    try:
        async with conn.begin_nested():
            created = await service.sign_up(conn, email=email, password=password, name=name)
    except AppError as error:
        return render(request, "signup.html", error.status, values={"name": name, "email": email},
                      errors=field_errors(error))
    return await _session(conn, request, created, "/", f"Welcome, {created.name}.")


@router.post("/signout", dependencies=[CsrfChecked])
async def signout(request: Request, conn: Conn,
                  next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await service.revoke_token(conn, token=token)
    response = redirect(request, _safe_next(next), "You are signed out.")
    end_session(response)
    return response
