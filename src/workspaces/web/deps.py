"""Request dependencies: the transaction, the caller, and the caller's access to a workspace."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute, request_response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import Scope

from workspaces.accounts.service import TOKEN_PREFIX, Session, UserInfo, user_for_token
from workspaces.errors import AppError, Forbidden, NotAuthenticated
from workspaces.events.tell import WEBHOOKS_QUEUED
from workspaces.metrics.process import DB_WAITING
from workspaces.networks import in_networks, ip_of
from workspaces.oauth.bearer import (
    OWN_TOKEN,
    Need,
    OwnToken,
    client_of_grant,
    insufficient_scope,
    invalid_token,
    looks_like_jwt,
    reach,
    user_of_grant,
    verify,
)
from workspaces.oauth.scopes import ServiceScope
from workspaces.security import Passwords
from workspaces.settings import Settings
from workspaces.workspaces.service import Access, ClientRef, access_by_grant, access_by_token


@asynccontextmanager
async def connection(request: Request, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """A connection for this request: a transaction committed when the block ends (rolled back
    if it raised), or for reads an autocommit connection (no BEGIN and COMMIT: two round trips
    fewer, and on SQLite no write lock taken by a reader).

    It first takes one of the worker's connection slots, waiting in a first-come first-served
    queue for at most the pool timeout (then 503 `server_busy`).
    """
    state = request.app.state
    slots: asyncio.Semaphore = state.db_slots
    if slots.locked():  # wait in a fair queue, bounded by the pool timeout (503 server_busy)
        DB_WAITING.inc()
        try:
            await asyncio.wait_for(slots.acquire(), timeout=state.settings.database_pool_timeout)
        except TimeoutError:
            raise PoolTimeout("no connection slot free within the pool timeout") from None
        finally:
            DB_WAITING.dec()
    else:  # free: take it without wait_for's task (a measurable share of a short request)
        await slots.acquire()
    queued = webhooks = False
    try:
        if not write:
            async with state.reader.connect() as reader:
                yield reader
            return
        async with state.engine.begin() as conn:
            try:
                yield conn
            except AppError as error:
                if error.keep_writes:  # a refusal that was counted: the count stays
                    await conn.commit()
                raise
            finally:
                # `info` belongs to the pooled connection: always clear the flag. (A connection
                # found dead is invalidated, its `info` unreadable and its transaction lost.)
                if not conn.invalidated:
                    queued = bool(conn.info.pop("mail_queued", False))
                    webhooks = bool(conn.info.pop(WEBHOOKS_QUEUED, False))
    finally:
        slots.release()
    if queued:  # committed: wake the delivery loop now rather than at its next poll
        state.mail_wake.set()
    if webhooks:
        state.webhook_wake.set()


CONNECTION = "workspaces.connection"  # the request's connection, in its ASGI scope


async def _transaction(request: Request) -> AsyncConnection:
    """The request's connection, opened around its handler by `hold_connection`."""
    conn: AsyncConnection | None = request.scope.get(CONNECTION)
    if conn is None:  # a route added past app._route (test_architecture checks there is none)
        raise RuntimeError(f"{request.url.path}: a route that takes Conn must be added by "
                           "app._route, which opens the request's connection")
    return conn


def needs_connection(route: APIRoute) -> bool:
    """The route takes `Conn`, itself or through one of its dependencies."""
    todo = list(route.dependant.dependencies)
    while todo:
        dependency = todo.pop()
        if dependency.call is _transaction:
            return True
        todo.extend(dependency.dependencies)
    return False


def hold_connection(route: APIRoute) -> None:
    """Open the request's connection around the route's handler (FastAPI's, which solves the
    dependencies, runs the endpoint and builds the response): one transaction per request,
    committed after the handler returns and before the response is sent; GET and HEAD change
    nothing and only read (`connection`).

    Not a dependency with `yield`: FastAPI runs one in an exit stack inside a shielded cancel
    scope, which cost a short request about a tenth of its CPU (docs/benchmarks.md, issue 22).
    The body of every request but a GET or HEAD is read before the connection is taken (its
    size bounded by BodyLimit): a slow or endless upload holds no connection slot, whether the
    endpoint reads it (FastAPI reads it before it solves the dependencies) or a dependency
    does (the CSRF check of a page's form). The request keeps it: they read it from memory."""
    handler = route.get_route_handler()

    async def holding(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            try:
                await request.body()
            except HTTPException:  # 413 (BodyLimit), as FastAPI's handler lets it through
                raise
            except Exception as exc:  # as FastAPI's handler answers a body it cannot read
                raise HTTPException(400, "There was an error parsing the body") from exc
        async with connection(request, write=request.method not in ("GET", "HEAD")) as conn:
            request.scope[CONNECTION] = conn
            return await handler(request)

    route.app = request_response(holding)
    _HOLDERS.add(route.app)


_HOLDERS: weakref.WeakSet[Any] = weakref.WeakSet()  # the ASGI apps `hold_connection` made


def holds_connection(route: APIRoute) -> bool:
    """`hold_connection` made the route's application (tests/test_architecture.py asks)."""
    return route.app in _HOLDERS


@dataclass(frozen=True)
class RequestTransactions:
    """`db.Transactions` for one request, each taking a connection slot while it lasts."""

    request: Request

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return connection(self.request, write=False)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return connection(self.request, write=True)


Conn = Annotated[AsyncConnection, Depends(_transaction)]  # see hold_connection

_bearer = HTTPBearer(auto_error=False, description=(
    "A token from sign-up or sign-in, or an access token (a JWT) Workspaces issued to an app, "
    "limited by its scopes."))


def from_trusted_proxy(request: Request) -> bool:
    """The peer is one of TRUSTED_PROXIES: its X-Forwarded-For is believed."""
    return _trusted_peer(request.scope)


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _trusted_peer(scope: Scope) -> bool:
    return in_networks(_peer(scope), scope["app"].state.settings.trusted_proxies)


UNKNOWN_CLIENT = "unknown"  # in no network; its limits are shared by all such requests


def client_address(request: Request) -> str:
    """The client's IP address, which the per-client limits count (`client_of`)."""
    return client_of(request.scope)


def client_of(scope: Scope) -> str:
    """The IP address of the client of a request (its ASGI scope), which the limits count.

    The peer address, unless the peer is one of TRUSTED_PROXIES: then X-Forwarded-For is read
    from the right (each proxy appends the address it saw), skipping trusted proxies; the first
    address that is not one is the client. A client cannot choose its address by sending the
    header itself: a trusted proxy appends to it, and only the part right of the first
    untrusted hop is believed.
    """
    peer = _peer(scope)
    trusted = scope["app"].state.settings.trusted_proxies
    if not trusted or not in_networks(peer, trusted):
        return peer
    nearest = ip_of(peer)
    hops = [hop for name, value in scope["headers"] if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = ip_of(hop)
        if address is None:  # a trusted proxy forwarded what is no address ("unknown", an
            return UNKNOWN_CLIENT  # obfuscated id): not the proxy's own address (loopback!)
        nearest = address
        if not in_networks(address, trusted):
            break
    return str(nearest)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings_dep)]


def issued_session(request: Request, kind: str, ttl: timedelta) -> Session:
    """A session issued to this request's device: its User-Agent header, and the client address
    the limits count (`client_address`)."""
    return Session(kind, ttl, user_agent=request.headers.get("user-agent"),
                   address=client_address(request))


def api_session(request: Request) -> Session:
    """The bearer token sign-up, sign-in and joining from an invite issue through the API."""
    settings: Settings = request.app.state.settings
    return issued_session(request, "api", timedelta(days=settings.api_token_ttl_days))

Tx = Annotated[RequestTransactions, Depends(RequestTransactions)]


def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


PasswordHashing = Annotated[Passwords, Depends(_passwords)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

# Who may call a route, and with which token. Our opaque tokens (`wst_...`) are unlimited, as
# ever; a JWT access token must grant the route's need (`oauth.bearer.Need`): a scope, or
# `own_token`, which no JWT grants. Each dependency below that reads the bearer token is made
# with its route's need, which tests/test_architecture.py reads off every /api route.


def _refused() -> NotAuthenticated:
    return invalid_token("The token is unknown, expired or signed out; sign in again.")


_SIGN_IN_FIRST = "Sign in first: send `Authorization: Bearer <token>`."


def _sign_in_first(message: str = _SIGN_IN_FIRST) -> NotAuthenticated:
    return NotAuthenticated(message, headers={"WWW-Authenticate": "Bearer"})


def _is_jwt(token: str) -> bool:
    return not token.startswith(TOKEN_PREFIX) and looks_like_jwt(token)


async def bearer_user(conn: AsyncConnection, credentials: HTTPAuthorizationCredentials
                      ) -> UserInfo:
    """The caller of one of our opaque tokens; 401 for a token that is not valid, 403 for an
    app's access token (JWT: not the account's own)."""
    if _is_jwt(credentials.credentials):
        raise insufficient_scope(OWN_TOKEN)
    user = await user_for_token(conn, token=credentials.credentials, kind="api")
    if user is None:
        raise _refused()
    return user


def _user_required() -> Forbidden:
    return Forbidden("A service client's token acts for no account: this needs a person's "
                     "token.", code="user_required")


@dataclass(frozen=True)
class Needs:
    """A dependency that reads the bearer token for a route that needs `need` of a JWT."""

    need: Need


@dataclass(frozen=True)
class _OwnCredentials(Needs):
    async def __call__(self, credentials: Credentials) -> HTTPAuthorizationCredentials | None:
        if credentials is not None and _is_jwt(credentials.credentials):
            raise insufficient_scope(OWN_TOKEN)
        return credentials


# The token if one was sent, never an app's access token: for routes that read it themselves.
OwnCredentials = Annotated[HTTPAuthorizationCredentials | None,
                           Depends(_OwnCredentials(OWN_TOKEN))]


@dataclass(frozen=True)
class _OptionalUser(Needs):
    async def __call__(self, conn: Conn, credentials: Credentials) -> UserInfo | None:
        return await bearer_user(conn, credentials) if credentials is not None else None


OptionalUser = Annotated[UserInfo | None, Depends(_OptionalUser(OWN_TOKEN))]


@dataclass(frozen=True)
class TokenUser:
    """A user and what their token reaches: `reach`, the one workspace of an app's token
    issued for a workspace they picked (`oauth.bearer.reach`); None: all of theirs."""

    user: UserInfo
    reach: uuid.UUID | None = None


@dataclass(frozen=True)
class _ScopedUser(Needs):
    async def __call__(self, request: Request, conn: Conn, credentials: Credentials
                       ) -> TokenUser:
        if credentials is None:
            raise _sign_in_first()
        token = credentials.credentials
        if not _is_jwt(token):
            return TokenUser(await bearer_user(conn, credentials))
        claims = await verify(conn, request.app.state.settings, token, self.need)
        if claims.user_id is None:
            raise _user_required()
        user = await user_of_grant(conn, claims)
        if user is None:
            raise _refused()
        return TokenUser(user, reach(claims))


def ScopedUser(need: Need) -> Any:
    """The signed-in user, for a route that needs `need` of an app's access token."""
    return Depends(_ScopedUser(need))


async def _current_user(caller: Annotated[TokenUser, ScopedUser(OWN_TOKEN)]) -> UserInfo:
    return caller.user


# The user of the account's own token: routes that manage the account.
CurrentUser = Annotated[UserInfo, Depends(_current_user)]


@dataclass(frozen=True)
class _ScopedAccess(Needs):
    async def __call__(self, slug: str, request: Request, conn: Conn,
                       credentials: Credentials) -> Access:
        """The caller and their standing in `slug`, found in one query: a member by our token
        (`access_by_token`) or by an app's (`access_by_grant`), or a service client."""
        if credentials is None:
            raise _sign_in_first()
        token = credentials.credentials
        if _is_jwt(token):
            claims = await verify(conn, request.app.state.settings, token, self.need)
            access = await access_by_grant(conn, grant_id=claims.gid,
                                           client_id=claims.client_id, user_id=claims.user_id,
                                           slug=slug, only=reach(claims))
        else:
            access = await access_by_token(conn, token=token, kind="api", slug=slug)
        if access is None:
            raise _refused()
        return access


def Scoped(need: ServiceScope | OwnToken) -> Any:
    """The caller's `Access` to the path's workspace, for a route that needs `need` of an
    app's access token: `access: Annotated[Access, Scoped("members:write")]`."""
    return Depends(_ScopedAccess(need))


@dataclass(frozen=True)
class Caller:
    """The caller and the token they sent (the one to keep when others are signed out)."""

    user: UserInfo
    token: str


@dataclass(frozen=True)
class _ApiCaller(Needs):
    async def __call__(self, tx: Tx, credentials: Credentials) -> Caller:
        """The bearer-token caller, looked up in a short read and no connection kept: for
        handlers that check or hash a password, which must hold none meanwhile."""
        if credentials is None:
            raise _sign_in_first()
        async with tx.read() as conn:
            user = await bearer_user(conn, credentials)
        return Caller(user, credentials.credentials)


ApiCaller = Annotated[Caller, Depends(_ApiCaller(OWN_TOKEN))]


InstanceScope = Literal["events:read", "webhooks:write"]  # what the instance's routes need
_FOR_SERVICES: dict[InstanceScope, str] = {
    "events:read": ("The instance feed is read with a service credential (a client's token "
                    "from the client_credentials grant, with the scope events:read), or on the "
                    "server with `workspaces events list`."),
    "webhooks:write": ("The instance's webhook endpoints are managed with a service credential "
                       "(a client's token from the client_credentials grant, with the scope "
                       "webhooks:write), or on the server with `workspaces webhooks`."),
}


@dataclass(frozen=True)
class _ServiceClient(Needs):
    need: InstanceScope

    async def __call__(self, request: Request, conn: Conn, credentials: Credentials
                       ) -> ClientRef:
        """A service client reaching every workspace: the whole instance (every workspace's
        events and the `user.*` ones) is its to read and to have delivered. 401 without a
        credential; 403 for a person's token, or a client registered for some workspaces."""
        why = _FOR_SERVICES[self.need]
        if credentials is None:
            raise _sign_in_first(why)
        if not _is_jwt(credentials.credentials):
            raise Forbidden(why, code="service_credential_required")
        claims = await verify(conn, request.app.state.settings, credentials.credentials,
                              self.need)
        if claims.user_id is not None:
            raise Forbidden(why, code="service_credential_required")
        client = await client_of_grant(conn, claims)
        if client is None:
            raise _refused()
        if client.restricted:
            raise Forbidden(f"{client.name} is registered for some workspaces only, and the "
                            "instance's events and endpoints concern every workspace: read "
                            "each workspace's own instead.", code="client_restricted")
        return client


def ServiceClient(need: InstanceScope) -> Any:
    """A service client reaching the whole instance, for a route that needs `need`."""
    return Depends(_ServiceClient(need))


InstanceReader = Annotated[ClientRef, ServiceClient("events:read")]
