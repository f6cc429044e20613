"""The OpenID provider's JSON endpoints: token (RFC 6749 3.2), userinfo (OpenID Connect Core
5.3), revocation (RFC 7009) and introspection (RFC 7662).

They read form bodies and answer in OAuth's own error shape, for relying-party libraries rather
than people; the discovery document, not /openapi.json, describes them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from workspaces.errors import AppError, RateLimited, counted
from workspaces.oauth import grants
from workspaces.oauth.clients import Client, Presented, authenticate
from workspaces.oauth.errors import OAuthError
from workspaces.settings import Settings
from workspaces.web.deps import AppSettings, Conn, RequestTransactions, Tx, client_address
from workspaces.web.routing import Route

router = APIRouter(route_class=Route, include_in_schema=False)

# Token responses and everything about tokens are never cached (RFC 6749 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"
# A browser app (a public client: a single-page app) calls the token, revocation and userinfo
# endpoints from its own origin, and must be able to read the answers: any origin may, without
# credentials. These endpoints read no cookie, so a page reads only answers to what it sent,
# with tokens it already held. Introspection is for servers (confidential clients): not open.
OPEN = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "WWW-Authenticate, Retry-After"}
PREFLIGHT_SECONDS = 86400


async def _form(request: Request) -> dict[str, str]:
    """The form body's parameters; empty ones count as absent (RFC 6749 3.1), repeated ones
    are refused."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != FORM:
        raise OAuthError("invalid_request", f"Send the parameters as {FORM}.")
    try:
        pairs = parse_qsl((await request.body()).decode(), errors="strict")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The form body is not UTF-8.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"The {name} parameter is repeated.")
        form[name] = value
    return form


def _unreadable_basic() -> OAuthError:
    return OAuthError("invalid_client", "The Authorization header is not HTTP Basic "
                      "authentication with the client_id and client_secret.", status=401,
                      headers={"WWW-Authenticate": 'Basic realm="workspaces"'})


def _presented(request: Request, form: dict[str, str]) -> Presented:
    """The client authentication the request carries: HTTP Basic (client_secret_basic, id and
    secret form-encoded first: RFC 6749 2.3.1), the form's client_id and client_secret
    (client_secret_post), or the form's client_id alone (a public client). One method only."""
    header = request.headers.get("authorization")
    if header is None:
        return Presented(form.get("client_id"), form.get("client_secret"))
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _unreadable_basic()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        name, colon, secret = decoded.partition(":")
        client_id, secret = unquote_plus(name, errors="strict"), unquote_plus(
            secret, errors="strict")
    except (binascii.Error, UnicodeDecodeError):
        raise _unreadable_basic() from None
    if not colon or not client_id:
        raise _unreadable_basic()
    if "client_secret" in form:
        raise OAuthError("invalid_request", "Authenticate the client one way: HTTP Basic or "
                         "client_secret in the form, not both.")
    if form.get("client_id", client_id) != client_id:
        raise OAuthError("invalid_request", "The client_id of the form is not the one of the "
                         "Authorization header.")
    return Presented(client_id, secret or None)


def _slow_down(limited: RateLimited) -> OAuthError:
    return OAuthError("slow_down", limited.message, status=429, headers=limited.headers)


def _refusal(error: AppError, *, browser: bool = True) -> AppError:
    """A refusal in OAuth's shape, never cached (readable by a browser app unless this is
    introspection), keeping what its transaction counted (limits, a failed authentication)
    and ended (a replayed code's grant)."""
    error.headers = {**NO_STORE, **(OPEN if browser else {}), **error.headers}
    return counted(error)


@contextlib.contextmanager
def _refusals(*, browser: bool = True) -> Iterator[None]:
    try:
        yield
    except RateLimited as limited:
        raise _refusal(_slow_down(limited), browser=browser) from None
    except OAuthError as refused:
        raise _refusal(refused, browser=browser) from None


@router.options("/oauth/token")
@router.options("/oauth/revoke")
@router.options("/oauth/userinfo")
async def preflight(request: Request) -> Response:
    """A browser's CORS preflight (for a request with an Authorization header)."""
    methods = "GET, POST" if request.url.path == "/oauth/userinfo" else "POST"
    return Response(status_code=204, headers={
        **OPEN, "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": str(PREFLIGHT_SECONDS)})


async def _authenticated(request: Request, tx: RequestTransactions, settings: Settings, *,
                         limited: bool, browser: bool = True
                         ) -> tuple[dict[str, str], Client]:
    """The form, and the client that sent it, authenticated in a transaction of its own: the
    counter rows it updates (limits, failed authentications) stay locked only that long, so
    one client's requests do not queue behind each other's grants."""
    with _refusals(browser=browser):
        form = await _form(request)
        presented = _presented(request, form)
    async with tx.write() as conn:
        with _refusals(browser=browser):
            client = await authenticate(conn, settings, presented=presented,
                                               address=client_address(request),
                                               limited=limited)
    return form, client


@router.post("/oauth/token")
async def token(request: Request, tx: Tx, settings: AppSettings) -> JSONResponse:
    """Tokens for a code, a refresh token or a client's own credentials."""
    form, client = await _authenticated(request, tx, settings, limited=True)
    async with tx.write() as conn:
        with _refusals():
            issued = await grants.exchange(conn, settings, client=client, params=form)
    return JSONResponse(issued.body(), headers={**NO_STORE, **OPEN})


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@router.api_route("/oauth/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request, conn: Conn, settings: AppSettings) -> JSONResponse:
    """The signed-in user's claims, for an access token with `openid`."""
    with _refusals():
        claims = await grants.userinfo(conn, settings, token=_bearer(request))
    return JSONResponse(claims, headers={**NO_STORE, **OPEN})


def _token_parameter(form: dict[str, str], *, browser: bool = True) -> str:
    token = form.get("token")
    if token is None:
        raise _refusal(OAuthError("invalid_request", "The token parameter is missing."),
                       browser=browser)
    return token


@router.post("/oauth/revoke")
async def revoke(request: Request, tx: Tx, settings: AppSettings) -> Response:
    """End a refresh or access token of the client, with its grant; 200 for any token."""
    form, client = await _authenticated(request, tx, settings, limited=False)
    token = _token_parameter(form)
    async with tx.write() as conn:
        await grants.revoke(conn, settings, client=client, token=token)
    return Response(status_code=200, headers={**NO_STORE, **OPEN})


@router.post("/oauth/introspect")
async def introspect(request: Request, tx: Tx, settings: AppSettings) -> JSONResponse:
    """What a token of the (confidential) client stands for, or `{"active": false}`."""
    form, client = await _authenticated(request, tx, settings, limited=False, browser=False)
    token = _token_parameter(form, browser=False)
    async with tx.read() as conn:
        with _refusals(browser=False):
            answer = await grants.introspect(conn, settings, client=client, token=token)
    return JSONResponse(answer, headers=NO_STORE)
