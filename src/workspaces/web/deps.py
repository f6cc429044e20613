"""Request dependencies: the transaction, the caller, and the caller's access to a workspace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import UserInfo, user_for_token
from workspaces.errors import NotAuthenticated
from workspaces.settings import Settings
from workspaces.workspaces.service import Access, access_by_token


async def _transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed after the handler returns, before the response
    is sent (scope="function"); rolled back if anything raised.

    GET and HEAD change nothing, so they run without BEGIN and COMMIT (autocommit reads): two
    round trips fewer, and on SQLite no write lock taken by a reader.

    A request first takes one of the worker's connection slots, waiting in a first-come
    first-served queue for at most the pool timeout (then 503 `server_busy`).
    """
    state = request.app.state
    slots: asyncio.Semaphore = state.db_slots
    if slots.locked():  # wait in a fair queue, bounded by the pool timeout (503 server_busy)
        try:
            await asyncio.wait_for(slots.acquire(), timeout=state.settings.database_pool_timeout)
        except TimeoutError:
            raise PoolTimeout("no connection slot free within the pool timeout") from None
    else:  # free: take it without wait_for's task (a measurable share of a short request)
        await slots.acquire()
    queued = False
    try:
        if request.method in ("GET", "HEAD"):
            async with state.engine.connect() as reader:
                yield await reader.execution_options(isolation_level="AUTOCOMMIT")
            return
        async with state.engine.begin() as conn:
            try:
                yield conn
            finally:
                # `info` belongs to the pooled connection: always clear the flag. (A connection
                # found dead is invalidated, its `info` unreadable and its transaction lost.)
                if not conn.invalidated:
                    queued = bool(conn.info.pop("mail_queued", False))
    finally:
        slots.release()
    if queued:  # committed: wake the delivery loop now rather than at its next poll
        state.mail_wake.set()


Conn = Annotated[AsyncConnection, Depends(_transaction, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A token from sign-up or sign-in.")


def client_address(request: Request) -> str:
    """The peer address (behind a proxy, run uvicorn with --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _refused() -> NotAuthenticated:
    return NotAuthenticated("The token is unknown, expired or signed out; sign in again.",
                            code="invalid_token")


async def _optional_user(conn: Conn, credentials: Credentials) -> UserInfo | None:
    if credentials is None:
        return None
    user = await user_for_token(conn, token=credentials.credentials, kind="api")
    if user is None:
        raise _refused()
    return user


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
