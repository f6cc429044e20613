"""Request dependencies: the transaction, the caller, and the caller's access to a workspace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import Session, UserInfo, user_for_token
from workspaces.errors import AppError, Forbidden, NotAuthenticated
from workspaces.events.tell import WEBHOOKS_QUEUED, Actor
from workspaces.metrics.process import DB_WAITING
from workspaces.networks import in_networks, ip_of
from workspaces.security import Passwords
from workspaces.settings import Settings
from workspaces.workspaces.service import Access, access_by_token


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
            async with state.engine.connect() as reader:
                yield await reader.execution_options(isolation_level="AUTOCOMMIT")
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


async def _transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    """One transaction per request, committed after the handler returns and before the
    response is sent (scope="function"); GET and HEAD change nothing and only read."""
    async with connection(request, write=request.method not in ("GET", "HEAD")) as conn:
        yield conn


@dataclass(frozen=True)
class RequestTransactions:
    """`db.Transactions` for one request, each taking a connection slot while it lasts."""

    request: Request

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return connection(self.request, write=False)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return connection(self.request, write=True)


Conn = Annotated[AsyncConnection, Depends(_transaction, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A token from sign-up or sign-in.")


def from_trusted_proxy(request: Request) -> bool:
    """The peer is one of TRUSTED_PROXIES: its X-Forwarded-For is believed."""
    peer = request.client.host if request.client else "unknown"
    return in_networks(peer, request.app.state.settings.trusted_proxies)


UNKNOWN_CLIENT = "unknown"  # in no network; its limits are shared by all such requests


def client_address(request: Request) -> str:
    """The client's IP address, which the per-client limits count.

    The peer address, unless the peer is one of TRUSTED_PROXIES: then X-Forwarded-For is read
    from the right (each proxy appends the address it saw), skipping trusted proxies; the first
    address that is not one is the client. A client cannot choose its address by sending the
    header itself: a trusted proxy appends to it, and only the part right of the first
    untrusted hop is believed.
    """
    peer = request.client.host if request.client else "unknown"
    if not from_trusted_proxy(request):
        return peer
    nearest = ip_of(peer)
    hops = [hop for value in request.headers.getlist("x-forwarded-for")
            for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = ip_of(hop)
        if address is None:  # a trusted proxy forwarded what is no address ("unknown", an
            return UNKNOWN_CLIENT  # obfuscated id): not the proxy's own address (loopback!)
        nearest = address
        if not in_networks(address, request.app.state.settings.trusted_proxies):
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


def _refused() -> NotAuthenticated:
    return NotAuthenticated("The token is unknown, expired or signed out; sign in again.",
                            code="invalid_token")


async def bearer_user(conn: AsyncConnection, credentials: HTTPAuthorizationCredentials
                      ) -> UserInfo:
    """The caller of a bearer token; 401 for a token that is not valid."""
    user = await user_for_token(conn, token=credentials.credentials, kind="api")
    if user is None:
        raise _refused()
    return user


async def _optional_user(conn: Conn, credentials: Credentials) -> UserInfo | None:
    return await bearer_user(conn, credentials) if credentials is not None else None


OptionalUser = Annotated[UserInfo | None, Depends(_optional_user)]


_SIGN_IN_FIRST = "Sign in first: send `Authorization: Bearer <token>`."


async def _current_user(user: OptionalUser) -> UserInfo:
    if user is None:
        raise NotAuthenticated(_SIGN_IN_FIRST)
    return user


CurrentUser = Annotated[UserInfo, Depends(_current_user)]


async def _workspace_access(slug: str, conn: Conn, credentials: Credentials) -> Access:
    """The caller and their role in `slug`, found in one query (see `access_by_token`)."""
    if credentials is None:
        raise NotAuthenticated(_SIGN_IN_FIRST)
    access = await access_by_token(conn, token=credentials.credentials, kind="api", slug=slug)
    if access is None:
        raise _refused()
    return access


WorkspaceAccess = Annotated[Access, Depends(_workspace_access)]


@dataclass(frozen=True)
class Caller:
    """The caller and the token they sent (the one to keep when others are signed out)."""

    user: UserInfo
    token: str


async def _api_caller(tx: Tx, credentials: Credentials) -> Caller:
    """The bearer-token caller, looked up in a short read and no connection kept: for handlers
    that check or hash a password, which must hold none meanwhile."""
    if credentials is None:
        raise NotAuthenticated(_SIGN_IN_FIRST)
    async with tx.read() as conn:
        user = await bearer_user(conn, credentials)
    return Caller(user, credentials.credentials)


ApiCaller = Annotated[Caller, Depends(_api_caller)]


_INSTANCE_FEED = ("The instance feed is read with a service credential (next release) or on the "
                  "server with `workspaces events list`.")


async def _instance_reader(credentials: Credentials) -> Actor:
    """Who may read the whole instance (every workspace's events, and `user.*`) through the
    API: a service credential, which the next release brings (it is checked here, and the
    actor it names returned). Until then no caller may: 401 without a credential, 403 with a
    user's token."""
    if credentials is None:
        raise NotAuthenticated(_INSTANCE_FEED)
    raise Forbidden(_INSTANCE_FEED, code="service_credential_required")


InstanceReader = Annotated[Actor, Depends(_instance_reader)]
