"""Server-rendered pages: templates, the session cookie, CSRF, flash messages, security headers.

CSRF uses a double-submit token: a random `ws_csrf` cookie (HttpOnly, SameSite=Lax) whose value
every form repeats in a hidden field; a POST whose field and cookie differ is refused. Flash
messages ride in a short-lived cookie across the redirect that follows every successful POST.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from workspaces.accounts.service import UserInfo, user_for_token
from workspaces.errors import AppError, Forbidden
from workspaces.web.deps import Conn

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
SESSION_COOKIE, CSRF_COOKIE, FLASH_COOKIE = "ws_session", "ws_csrf", "ws_flash"
SESSION_DAYS = 14


class SignInRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def secure_cookies(request: Request) -> bool:
    return str(request.app.state.settings.base_url).startswith("https://")


def _csrf(request: Request) -> str:
    if not hasattr(request.state, "csrf"):
        request.state.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return str(request.state.csrf)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the CSRF token its forms need and the flash message left for it."""
    flash = request.cookies.get(FLASH_COOKIE)
    response = templates.TemplateResponse(
        request, template, {
            "user": getattr(request.state, "user", None),
            "csrf_token": _csrf(request),
            "flash": json.loads(flash) if flash else None,
            **context,
        }, status_code=status,
    )
    if request.cookies.get(CSRF_COOKIE) != _csrf(request):
        response.set_cookie(CSRF_COOKIE, _csrf(request), httponly=True, samesite="lax",
                            secure=secure_cookies(request))
    if flash:
        response.delete_cookie(FLASH_COOKIE)
    return response


def redirect(request: Request, url: str, message: str | None = None, *,
             kind: str = "success", link: str | None = None) -> RedirectResponse:
    """303 after a POST, carrying a one-time confirmation (and, once, an invite link)."""
    response = RedirectResponse(url, status_code=303)
    if message:
        response.set_cookie(FLASH_COOKIE, json.dumps({"kind": kind, "text": message,
                                                      "link": link}),
                            max_age=120, httponly=True, samesite="lax",
                            secure=secure_cookies(request))
    return response


def start_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400, httponly=True,
                        samesite="lax", secure=secure_cookies(request))


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)


async def verify_csrf(request: Request) -> None:
    """Every page POST must repeat the CSRF cookie in its `csrf_token` field."""
    form = await request.form()
    sent, expected = form.get("csrf_token"), request.cookies.get(CSRF_COOKIE)
    if not (isinstance(sent, str) and expected
            and hmac.compare_digest(sent.encode(), expected.encode())):
        raise Forbidden("This form has expired or did not come from this site; reload the page "
                        "and try again.", code="csrf_failed")


CsrfChecked = Depends(verify_csrf)


async def _page_user(request: Request, conn: Conn) -> UserInfo | None:
    token = request.cookies.get(SESSION_COOKIE)
    user = await user_for_token(conn, token=token, kind="browser") if token else None
    request.state.user = user
    return user


PageUser = Annotated[UserInfo | None, Depends(_page_user)]


async def _signed_in(request: Request, user: PageUser) -> UserInfo:
    if user is None:
        raise SignInRequired(request.url.path)
    return user


SignedIn = Annotated[UserInfo, Depends(_signed_in)]


def sign_in_url(next_url: str) -> str:
    return f"/signin?next={quote(next_url, safe='/')}"


def field_errors(error: AppError) -> dict[str, str]:
    """`{field: message}` for a form, or `{"form": message}` when no field is to blame."""
    return {str(error.extra.get("field", "form")): error.message}


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/healthz", "/readyz", "/openapi"))


def error_page(request: Request, error: AppError) -> HTMLResponse:
    headings = {503: "Service is being upgraded", 404: "Not found", 403: "Not allowed",
                410: "Invitation no longer valid", 429: "Slow down"}
    response = render(request, "message.html", error.status,
                      heading=headings.get(error.status, "Something is not right"),
                      text=error.message)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
