"""Our API's bearer tokens: our own opaque ones (`wst_...`, unlimited, as ever), or access
tokens we issued as JWTs, verified offline against our published keys and limited by their
scopes; and the live checks a JWT still needs (its grant not revoked, its user or client still
there) when nothing else in the request's one query makes them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Literal, get_args

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.accounts.service import USER_COLUMNS, UserInfo, user_of
from workspaces.errors import Forbidden, NotAuthenticated
from workspaces.models import oauth_clients, oauth_grants, users
from workspaces.oauth import keys, tokens
from workspaces.oauth.scopes import USER_API_SCOPES, ServiceScope
from workspaces.oauth.tokens import AccessClaims, InvalidAccessToken
from workspaces.settings import Settings
from workspaces.workspaces.service import LIVE_GRANT, ClientRef

log = logging.getLogger("workspaces.oauth")

# What a route asks of a JWT caller: an API scope, `openid` (who the user is), or the
# account's own opaque token (managing the account, or a workspace as a whole: no app may).
OwnToken = Literal["own_token"]
OWN_TOKEN: OwnToken = "own_token"  # noqa: S105 (a word of our vocabulary, not a secret)
Need = ServiceScope | Literal["openid"] | OwnToken
NEEDS: tuple[str, ...] = (*get_args(ServiceScope), "openid", OWN_TOKEN)

looks_like_jwt = tokens.looks_like_jwt
# The need `openid` is `GET /api/me`: who the user is, shown with their address and name,
# which an app sees only with `email` and `profile` too (as in its ID token and userinfo).
ME_SCOPES = ("openid", "email", "profile")


def granting(need: Need) -> tuple[str, ...]:
    """The scopes a token must hold (itself or by implication: `opens`) for `need`."""
    return ME_SCOPES if need == "openid" else (need,)


def opens(scopes: Iterable[str]) -> frozenset[str]:
    """What a token's scopes open in the API: themselves, and the API scopes a user's
    consent to see their workspaces implies (`scopes.USER_API_SCOPES`)."""
    opened = set(scopes)
    for scope, implied in USER_API_SCOPES.items():
        if scope in opened:
            opened.update(implied)
    return frozenset(opened)


def invalid_token(message: str) -> NotAuthenticated:
    """401 `invalid_token`, with the challenge RFC 6750 asks for."""
    return NotAuthenticated(message, code="invalid_token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def insufficient_scope(need: Need) -> Forbidden:
    """403 `insufficient_scope` (RFC 6750 3.1), naming the scope the route needs."""
    if need == OWN_TOKEN:
        return Forbidden("An app's access token cannot do this (it manages your account, or a "
                         "workspace as a whole): use the account's own API token, from "
                         "signing in.", code="insufficient_scope",
                         headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    wanted = " ".join(granting(need))
    return Forbidden(f"This access token was not granted the scope `{wanted}` this needs; "
                     "ask for it when the token is issued.", code="insufficient_scope",
                     headers={"WWW-Authenticate":
                              f'Bearer error="insufficient_scope", scope="{wanted}"'})


async def verify(conn: AsyncConnection, settings: Settings, token: str, need: Need
                 ) -> AccessClaims:
    """The claims of a JWT access token we issued for our API, checked offline (signature,
    issuer, audience, expiry, type), that grants `need`; 401 `invalid_token`, or 403
    `insufficient_scope`."""
    if need == OWN_TOKEN:  # no app may, however its token reads
        raise insufficient_scope(need)
    try:
        claims = await keys.verified_access_token(conn, settings, token)
    except InvalidAccessToken as refused:
        log.debug("access token refused: %s", refused.reason)
        raise invalid_token(refused.message) from None
    if not set(granting(need)) <= opens(claims.scopes):
        raise insufficient_scope(need)
    return claims


def reach(claims: AccessClaims) -> uuid.UUID | None:
    """The one workspace a user's token reaches when it was issued for a workspace the user
    picked (scope `workspace`) without their whole list (`workspaces`); None: any of theirs."""
    if claims.workspace is None or "workspaces" in claims.scopes:
        return None
    return claims.workspace.id


def _live(claims: AccessClaims) -> dict[str, object]:
    return {"grant_id": claims.gid, "client_id": claims.client_id}


_USER = (select(*USER_COLUMNS).join(oauth_grants, oauth_grants.c.user_id == users.c.id)
         .where(*LIVE_GRANT, users.c.id == bindparam("user_id")))
_CLIENT = (select(oauth_clients.c.id, oauth_clients.c.name, oauth_clients.c.workspace_restricted)
           .join(oauth_grants, oauth_grants.c.client_id == oauth_clients.c.id)
           .where(*LIVE_GRANT, oauth_grants.c.user_id.is_(None)))


async def user_of_grant(conn: AsyncConnection, claims: AccessClaims) -> UserInfo | None:
    """The user a user's access token acts for, while its grant is live; else None."""
    if claims.user_id is None:
        return None
    row = (await conn.execute(_USER, {**_live(claims), "user_id": claims.user_id})).first()
    return user_of(row) if row is not None else None


async def client_of_grant(conn: AsyncConnection, claims: AccessClaims) -> ClientRef | None:
    """The client a service token (client_credentials) acts as, while its grant is live and
    the client registered (a deleted client's grants go with it); else None."""
    if claims.user_id is not None:
        return None
    row = (await conn.execute(_CLIENT, _live(claims))).first()
    return ClientRef(row.id, row.name, bool(row.workspace_restricted)) if row else None
