"""Registered clients: looking one up, and authenticating a confidential one by its secret."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.errors import RateLimited, counted
from workspaces.models import oauth_client_workspaces, oauth_clients
from workspaces.oauth.errors import OAuthError
from workspaces.security import hash_token
from workspaces.settings import Settings

CLIENT_ID_PREFIX = "wsc_"
CLIENT_SECRET_PREFIX = "wscs_"  # noqa: S105 (a marker that makes leaked secrets easy to find)


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    public: bool  # no secret: PKCE is required
    trusted: bool  # first-party: no consent page
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    # The workspaces its service tokens reach; None: every workspace.
    workspace_ids: frozenset[uuid.UUID] | None
    created_at: datetime
    secret_hash: str | None

    def reaches(self, workspace_id: uuid.UUID) -> bool:
        return self.workspace_ids is None or workspace_id in self.workspace_ids


def client_of(row: Any, workspace_ids: frozenset[uuid.UUID] | None) -> Client:
    return Client(row.id, row.name, row.secret_hash is None, row.trusted,
                  tuple(row.redirect_uris), tuple(row.post_logout_redirect_uris),
                  tuple(row.scopes), workspace_ids, clock.aware(row.created_at),
                  row.secret_hash)


async def get_client(conn: AsyncConnection, client_id: str) -> Client | None:
    """The client registered as `client_id`, or None."""
    row = (await conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id))
           ).first()
    if row is None:
        return None
    reach: frozenset[uuid.UUID] | None = None
    if row.workspace_restricted:
        reach = frozenset((await conn.execute(
            select(oauth_client_workspaces.c.workspace_id)
            .where(oauth_client_workspaces.c.client_id == client_id))).scalars())
    return client_of(row, reach)


def _failures(client_id: str, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"oauth:client-auth-fail:{ratelimit.hashed(client_id)}",
                           settings.client_auth_failures_per_client_per_hour,
                           timedelta(hours=1), "failed client authentications",
                           name="client_auth_failures_per_client_per_hour")


def token_limits(client_id: str | None, address: str, settings: Settings
                 ) -> tuple[ratelimit.Limit, ...]:
    """The token endpoint's limits: per client address, and per client when one is named."""
    minute = timedelta(minutes=1)
    limits = [ratelimit.Limit(f"oauth:token:addr:{ratelimit.client_key(address)}",
                              settings.token_limit_per_address_per_minute, minute,
                              "token requests from your network",
                              name="token_limit_per_address_per_minute")]
    if client_id:
        limits.append(ratelimit.Limit(f"oauth:token:client:{ratelimit.hashed(client_id)}",
                                      settings.token_limit_per_client_per_minute, minute,
                                      "token requests for this client",
                                      name="token_limit_per_client_per_minute"))
    return tuple(limits)


def _invalid_client() -> OAuthError:
    # One answer for an unknown client, a wrong secret and a missing one: nothing tells which.
    return OAuthError("invalid_client", "Client authentication failed: check the client_id "
                      "and client_secret.", status=401,
                      headers={"WWW-Authenticate": 'Basic realm="workspaces"'})


async def authenticate_client(conn: AsyncConnection, settings: Settings, *, client_id: str,
                              secret: str | None) -> Client:
    """The client whose id and secret these are (a public client: its id and no secret).

    Each attempt with a secret is counted as a failure before it is checked and taken back when
    it is right, so guesses sent at once cannot pass the limit; over it, 429 even for the right
    secret until the hour ends. A refusal keeps its count (the caller's transaction commits it).
    """
    limit = _failures(client_id, settings)
    try:
        await ratelimit.hit(conn, limit)
    except RateLimited as refused:
        raise counted(refused) from None
    client = await get_client(conn, client_id)
    if client is None:
        raise counted(_invalid_client())
    if client.secret_hash is None:
        if secret is not None:  # a public client has no secret to send
            raise counted(_invalid_client())
    elif secret is None or not hmac.compare_digest(client.secret_hash, hash_token(secret)):
        raise counted(_invalid_client())
    await ratelimit.undo(conn, limit)
    return client
