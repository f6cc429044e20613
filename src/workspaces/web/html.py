"""Server-rendered pages: templates, the session cookie, CSRF and flash messages.

(The security headers every response carries are set in web/middleware.py.)

CSRF: every form repeats a token the server derives, with HMAC-SHA256 under SECRET_KEY, from a
cookie the browser already sends, so nothing is stored and a cookie planted by someone else is
never adopted. Signed in, the token is bound to the session cookie; anonymous, to a random
pre-session cookie (`ws_anon`) that the server issues signed and replaces when it is missing,
unsigned or forged. Signing in drops the anonymous cookie and signing out issues a fresh one,
so the token changes at both. A POST whose token differs from the one its cookies give is
refused with 403 `csrf_failed`.

Flash messages ride in a short-lived cookie across the redirect that follows every successful
POST, signed and timestamped (itsdangerous); one unreadable, forged or too old is ignored.

Cookies are HttpOnly and SameSite=Lax. Served over https they are Secure and carry the
`__Host-` prefix (Path=/, no Domain): another site under the same parent domain cannot set or
overwrite them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadData, Signer, URLSafeTimedSerializer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import logs
from workspaces.accounts.service import PASSWORD_RULE, Session, UserInfo, user_for_token
from workspaces.errors import AppError, Forbidden, SchemaOutOfDate
from workspaces.security import seal, unseal
from workspaces.settings import Settings
from workspaces.web.deps import Conn, connection, issued_session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["password_rule"] = PASSWORD_RULE
SESSION_COOKIE, ANON_COOKIE, FLASH_COOKIE = "ws_session", "ws_anon", "ws_flash"
SESSION_DAYS = 14
T = TypeVar("T")
FLASH_SECONDS = 120


class SignInRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def browser_session(request: Request) -> Session:
    """The browser session sign-up, sign-in and joining from an invite issue."""
    return issued_session(request, "browser", timedelta(days=SESSION_DAYS))


def served_over_https(settings: Settings) -> bool:
    """Whether browsers reach us over https (BASE_URL says so): Secure cookies, HSTS."""
    return str(settings.base_url).startswith("https://")


def secure_cookies(request: Request) -> bool:
    return served_over_https(request.app.state.settings)


def cookie_name(request: Request, name: str) -> str:
    """The name a cookie of ours has on this site: `__Host-` prefixed over https."""
    return f"__Host-{name}" if secure_cookies(request) else name


def _set_cookie(request: Request, response: Response, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(cookie_name(request, name), value, max_age=max_age, path="/",
                        httponly=True, samesite="lax", secure=secure_cookies(request))


def _delete_cookie(request: Request, response: Response, name: str) -> None:
    # The same attributes as when set: browsers ignore a __Host- cookie without Secure.
    response.delete_cookie(cookie_name(request, name), path="/", httponly=True,
                           samesite="lax", secure=secure_cookies(request))


def _secret(request: Request) -> str:
    return str(request.app.state.secret_key)


def _mac(request: Request, message: str) -> str:
    digest = hmac.new(_secret(request).encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _anon_signer(request: Request) -> Signer:
    return Signer(_secret(request), salt="workspaces.anon")


def signer(request: Request, purpose: str) -> URLSafeTimedSerializer:
    """Signs and timestamps what a page hands the browser to bring back (a cookie, a form's
    hidden field), under SECRET_KEY: `purpose` keeps one kind from passing for another."""
    return URLSafeTimedSerializer(_secret(request), salt=f"workspaces.{purpose}")


def _flash_serializer(request: Request) -> URLSafeTimedSerializer:
    return signer(request, "flash")


def session_token(request: Request) -> str | None:
    """The browser session token this request carries, if any (not checked against the db)."""
    return request.cookies.get(cookie_name(request, SESSION_COOKIE)) or None


def _anon_nonce(request: Request) -> str | None:
    """The nonce of the request's anonymous cookie, if the cookie bears our signature."""
    signed = request.cookies.get(cookie_name(request, ANON_COOKIE))
    if not signed:
        return None
    try:
        return _anon_signer(request).unsign(signed).decode()
    except BadData:
        return None


def _anon_csrf(request: Request, nonce: str) -> str:
    return _mac(request, f"anon:{nonce}")


def _expected_csrf(request: Request) -> str | None:
    """The token forms must carry: bound to the session cookie, else to the anonymous one."""
    session = session_token(request)
    if session:
        return _mac(request, f"csrf:{session}")
    nonce = _anon_nonce(request)
    return _anon_csrf(request, nonce) if nonce else None


def _issue_anon(request: Request, response: Response, nonce: str) -> None:
    _set_cookie(request, response, ANON_COOKIE, _anon_signer(request).sign(nonce).decode())


def _flash(request: Request) -> dict[str, Any] | None:
    """The flash message left for this page, or None if absent, unreadable, forged or old."""
    signed = request.cookies.get(cookie_name(request, FLASH_COOKIE))
    if not signed:
        return None
    try:
        message = _flash_serializer(request).loads(signed, max_age=FLASH_SECONDS)
    except BadData:
        return None
    if not isinstance(message, dict):
        return None
    if isinstance(message.get("secret"), str):
        message["secret"] = unseal(_secret(request), message["secret"])
    return message


def render(request: Request, template: str, status: int = 200, *,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A page, with the CSRF token its forms need and the flash message left for it (and
    `headers`, such as a refusal's Retry-After)."""
    fresh_nonce = None
    csrf = _expected_csrf(request)
    if csrf is None:  # anonymous, without an anonymous cookie of ours: issue one with this page
        fresh_nonce = secrets.token_urlsafe(32)
        csrf = _anon_csrf(request, fresh_nonce)
    response = templates.TemplateResponse(
        request, template, {
            "user": getattr(request.state, "user", None),
            "csrf_token": csrf,
            "flash": _flash(request),
            **context,
        }, status_code=status, headers=headers,
    )
    if fresh_nonce:
        _issue_anon(request, response, fresh_nonce)
    if request.cookies.get(cookie_name(request, FLASH_COOKIE)):
        _delete_cookie(request, response, FLASH_COOKIE)
    return response


def redirect(request: Request, url: str, message: str | None = None, *,
             kind: str = "success", link: str | None = None,
             fill: dict[str, str] | None = None, secret: str | None = None
             ) -> RedirectResponse:
    """303 after a POST, carrying a one-time confirmation (and, once, an invite link, a
    `secret` to show once, sealed with SECRET_KEY, or the values to `fill` in the next page's
    form: `filled`). In the signed cookie, not the URL: an address stays out of access logs
    and history."""
    response = RedirectResponse(url, status_code=303)
    if message:
        signed = _flash_serializer(request).dumps({
            "kind": kind, "text": message, "link": link, "fill": fill or {},
            "secret": seal(_secret(request), secret) if secret else None})
        _set_cookie(request, response, FLASH_COOKIE, signed, max_age=FLASH_SECONDS)
    return response


def filled(request: Request) -> dict[str, str]:
    """The form values the previous step left for this page (`redirect(fill=...)`)."""
    fill = (_flash(request) or {}).get("fill")
    return {str(k): str(v) for k, v in fill.items()} if isinstance(fill, dict) else {}


def start_session(request: Request, response: Response, token: str) -> None:
    """Sign the browser in; its anonymous cookie, and so its CSRF token, is dropped."""
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400)
    _delete_cookie(request, response, ANON_COOKIE)


def end_session(request: Request, response: Response) -> None:
    """Sign the browser out and give it a fresh anonymous cookie (a new CSRF token)."""
    _delete_cookie(request, response, SESSION_COOKIE)
    _issue_anon(request, response, secrets.token_urlsafe(32))


async def verify_csrf(request: Request) -> None:
    """Every page POST must repeat, in its `csrf_token` field, the token its cookies give."""
    form = await request.form()
    sent, expected = form.get("csrf_token"), _expected_csrf(request)
    if not (isinstance(sent, str) and expected
            and hmac.compare_digest(sent.encode(), expected.encode())):
        raise Forbidden("This form has expired or did not come from this site; reload the page "
                        "and try again.", code="csrf_failed")


CsrfChecked = Depends(verify_csrf)


async def _page_user(request: Request, conn: Conn) -> UserInfo | None:
    token = session_token(request)
    user = await user_for_token(conn, token=token, kind="browser") if token else None
    request.state.user = user
    return user


PageUser = Annotated[UserInfo | None, Depends(_page_user)]


async def _signed_in(request: Request, user: PageUser) -> UserInfo:
    if user is None:
        raise SignInRequired(request.url.path)
    return user


SignedIn = Annotated[UserInfo, Depends(_signed_in)]


NEXT_MAX = 4000  # the longest `next` a sign-in form carries (an authorization request's)


def sign_in_url(next_url: str, email: str | None = None) -> str:
    """The sign-in page, going on to `next_url` (and its email field filled with `email`)."""
    url = f"/signin?next={quote(next_url, safe='/')}"
    return f"{url}&email={quote(email, safe='@')}" if email else url


def _is_local_path(url: str) -> bool:
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return False
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


def safe_next(next_url: str | None) -> str:
    """`next_url` if it is a path on this site, else "/": never send a browser elsewhere.

    The percent-decoded form must pass too: browsers drop tabs and newlines inside URLs and
    read a backslash as a slash, so a decoding step anywhere on the way (a proxy, a second
    redirect) must not be able to turn `/%09/evil.example` into `//evil.example`. No path of
    ours needs those characters.
    """
    if next_url and _is_local_path(next_url) and _is_local_path(unquote(next_url)):
        return next_url
    return "/"


async def attempt(conn: AsyncConnection, work: Callable[[], Awaitable[T]]) -> T | AppError:
    """Run a form's action in a savepoint. A refusal (AppError) is returned, not raised, with
    the action's writes undone (kept for a counted one: `errors.counted`), so the page can
    show it (re-rendered or as a message) while the request's transaction still commits
    whatever came before."""
    try:
        async with conn.begin_nested():
            try:
                return await work()
            except AppError as error:
                if not error.keep_writes:
                    raise
                kept = error  # counted (`errors.counted`): its savepoint is kept
        return kept
    except AppError as error:
        return error


async def act(request: Request, conn: AsyncConnection, work: Callable[[], Awaitable[T]], *,
              back: str, done: Callable[[T], Response]) -> Response:
    """A button's action (no form to show again): a refusal comes back to `back` as an error
    message, a success answers as `done` says."""
    result = await attempt(conn, work)
    if isinstance(result, AppError):
        return redirect(request, back, result.message, kind="error")
    return done(result)


Confirmed = Annotated[str, Form(max_length=3)]
NO_STORE = {"Cache-Control": "no-store"}  # pages that hold a mailed link's token


def link_refused(request: Request, error: AppError, *, heading: str, email: str,
                 not_me: str | None = None,
                 back: tuple[str, str] | None = None) -> HTMLResponse:
    """The page of a mailed link that cannot act: not signed in as its account (links are used
    by the account itself: `accounts.links.check_holder`), offered to sign in and come back;
    or dead (410) or another account's (403), said so."""
    if error.code == "sign_in_required":
        return render(request, "link_sign_in.html", heading=heading, email=email,
                      text=error.message, sign_in=sign_in_url(request.url.path),
                      not_me=not_me, headers=NO_STORE)
    return render(request, "message.html", error.status, heading="This link does not work",
                  text=error.message, back=back, headers={**NO_STORE, **error.headers})


def confirm_page(request: Request, *, heading: str, text: str, button: str,
                 cancel: str) -> HTMLResponse:
    """Ask before a destructive action, without JavaScript: the page posts the same form again
    to the same address, `confirmed=yes` added (the handler acts only then)."""
    return render(request, "confirm.html", heading=heading, text=text, button=button,
                  action=request.url.path, cancel=cancel)


def field_errors(error: AppError) -> dict[str, str]:
    """`{field: message}` for a form, each problem next to its field (`validation.check_all`),
    or `{"form": message}` when no field is to blame."""
    problems = error.extra.get("fields") or [{"field": error.extra.get("field"),
                                              "message": error.message}]
    return {str(p["field"] or "form"): str(p["message"]) for p in problems}


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/healthz", "/readyz", "/openapi",
                                            "/metrics", "/.well-known/", *OAUTH_JSON_PATHS))


# The OpenID provider's endpoints that answer JSON (the authorization and logout endpoints are
# pages people see).
OAUTH_JSON_PATHS = ("/oauth/token", "/oauth/userinfo", "/oauth/revoke", "/oauth/introspect",
                    "/oauth/jwks")


UPGRADING = "This part of the service is being upgraded. Try again in a few minutes."
UNAVAILABLE = ("This part of the service is unavailable until the people who run it fix a "
               "problem on their side; trying again will not help before then. If you "
               "contact them, quote the reference below.")


def error_page(request: Request, error: AppError) -> HTMLResponse:
    """The page for a refusal. A schema problem is told to people as an upgrade only while a
    deploy holds the lock (it heals by itself); otherwise as an outage someone must fix. Which
    table and which command are for operators (the log, /readyz, the API's JSON)."""
    headings = {503: "Service unavailable", 404: "Not found", 403: "Not allowed",
                410: "No longer valid", 429: "Slow down"}
    heading, text = headings.get(error.status, "Something is not right"), error.message
    if error.code == SchemaOutOfDate.code:
        upgrading = bool(error.extra.get("deploy_in_progress"))
        heading = "Service is being upgraded" if upgrading else heading
        text = UPGRADING if upgrading else UNAVAILABLE
    return render(request, "message.html", error.status, headers=error.headers,
                  heading=heading, text=text, reference=logs.REQUEST_ID.get())


async def find_page_user(request: Request) -> None:
    """Who is signed in, for a page no route answered (404, 405): its header shows the
    session like every other page. A database that cannot say leaves it anonymous."""
    if hasattr(request.state, "user"):
        return
    request.state.user = None
    token = session_token(request)
    if not token:
        return
    try:
        async with connection(request, write=False) as conn:
            request.state.user = await user_for_token(conn, token=token, kind="browser")
    except (SQLAlchemyError, OSError, AppError):
        return
