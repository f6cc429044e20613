"""Grants: what the token endpoint issues under them (codes redeemed, refresh tokens rotated,
client credentials), what it says about their tokens (userinfo, introspection), and their end
(revocation, and the sessions that end them). The one writer of `oauth_grants`,
`oauth_refresh_tokens` and the redemption of `oauth_codes`.

A grant is revoked by setting `revoked_at` and deleting its refresh tokens; our API refuses the
access tokens that name it (`gid`) at once. Locks are taken grant first, then its refresh
tokens, by every writer here, so a refresh racing a revocation waits rather than deadlocks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, and_, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.accounts.service import UserInfo, user_of
from workspaces.models import (
    members,
    oauth_codes,
    oauth_grants,
    oauth_refresh_tokens,
    users,
    workspaces,
)
from workspaces.oauth import keys, tokens
from workspaces.oauth import scopes as vocabulary
from workspaces.oauth.errors import OAuthError
from workspaces.oauth.tokens import InvalidAccessToken, WorkspaceClaim
from workspaces.security import hash_token, new_token
from workspaces.settings import Settings

if TYPE_CHECKING:  # clients.py ends grants through this module
    from workspaces.oauth.clients import Client

REFRESH_PREFIX = "wsr_"  # a marker that makes leaked refresh tokens easy to find
# RFC 7636 4.1: 43 to 128 characters of the unreserved set.
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
GRANT_TYPES: tuple[GrantType, ...] = ("authorization_code", "refresh_token",
                                      "client_credentials")


@dataclass(frozen=True)
class Issued:
    """A token response (RFC 6749 5.1, OpenID Connect Core 3.1.3.3)."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    id_token: str | None = None
    refresh_token: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": self.access_token, "token_type": "Bearer",
                                "expires_in": self.expires_in, "scope": " ".join(self.scopes)}
        if self.id_token is not None:
            body["id_token"] = self.id_token
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True)
class Subject:
    """The user a grant is for, read now, and the grant's workspace if still a member."""

    user: UserInfo
    workspace: WorkspaceClaim | None


def _refused(code: Literal["invalid_request", "invalid_grant", "invalid_scope",
                           "unauthorized_client", "unsupported_grant_type"],
             message: str) -> OAuthError:
    return OAuthError(code, message)


def _dead_code() -> OAuthError:
    # One answer for unknown, expired, used and another client's: nothing tells which.
    return _refused("invalid_grant", "The authorization code is invalid, expired or was used "
                    "already: start the sign-in again.")


def _dead_refresh_token() -> OAuthError:
    return _refused("invalid_grant", "The refresh token is invalid, expired or was revoked: "
                    "sign in again.")


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _refused("invalid_request", f"The {name} parameter is missing.")
    return value


async def exchange(conn: AsyncConnection, settings: Settings, *, client: Client,
                   params: Mapping[str, str]) -> Issued:
    """The token endpoint's answer to an authenticated client's grant."""
    grant_type = _required(params, "grant_type")
    if grant_type == "authorization_code":
        return await _redeem_code(conn, settings, client=client, params=params)
    if grant_type == "refresh_token":
        return await _refresh(conn, settings, client=client, params=params)
    if grant_type == "client_credentials":
        return await _client_credentials(conn, settings, client=client, params=params)
    raise _refused("unsupported_grant_type", f"The grant_type must be one of "
                   f"{', '.join(GRANT_TYPES)}.")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_pkce(challenge: str | None, verifier: str | None) -> None:
    """RFC 7636 4.6; and a verifier for a code issued without a challenge is refused: a
    client that uses PKCE and sees its challenge dropped is being downgraded (RFC 9700 2.1.1)."""
    if challenge is None:
        if verifier is not None:
            raise _refused("invalid_grant", "A code_verifier was sent for a code issued "
                           "without a code_challenge.")
        return
    if verifier is None:
        raise _refused("invalid_grant", "The code_verifier is missing: this code was issued "
                       "with a code_challenge.")
    if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(_s256(verifier), challenge):
        raise _refused("invalid_grant", "The code_verifier does not match the code_challenge.")


def _user_scopes(granted: list[str], client: Client) -> tuple[str, ...]:
    """What a grant keeps: its scopes that the client may still hold."""
    return tuple(scope for scope in granted if scope in client.scopes)


_SUBJECT_COLUMNS = (users.c.id, users.c.email, users.c.name, users.c.created_at,
                    users.c.email_verified_at, workspaces.c.id.label("ws_id"),
                    workspaces.c.slug.label("ws_slug"), members.c.role.label("ws_role"))


def _with_membership(query: Any, workspace_id: Any) -> Any:
    """`query` (over users) joined to the user's membership of `workspace_id` and that
    workspace, both NULL when the user is no member (or `workspace_id` is NULL)."""
    return (query
            .outerjoin(members, and_(members.c.user_id == users.c.id,
                                     members.c.workspace_id == workspace_id))
            .outerjoin(workspaces, workspaces.c.id == members.c.workspace_id))


def _subject_of(row: Any) -> Subject:
    workspace = None if row.ws_id is None else WorkspaceClaim(row.ws_id, row.ws_slug,
                                                              row.ws_role)
    return Subject(user_of(row), workspace)


async def _subject(conn: AsyncConnection, *, user_id: uuid.UUID,
                   workspace_id: uuid.UUID | None) -> Subject | None:
    row = (await conn.execute(
        _with_membership(select(*_SUBJECT_COLUMNS).select_from(users), workspace_id)
        .where(users.c.id == user_id))).first()
    return None if row is None else _subject_of(row)


async def _redeem_code(conn: AsyncConnection, settings: Settings, *, client: Client,
                       params: Mapping[str, str]) -> Issued:
    """An authorization code for tokens, once (RFC 6749 4.1.3, OpenID Connect Core 3.1.3)."""
    code_hash = hash_token(_required(params, "code"))
    redirect_uri = _required(params, "redirect_uri")
    now = clock.now()
    row = (await conn.execute(select(oauth_codes).where(oauth_codes.c.code_hash == code_hash))
           ).first()
    if row is None or row.client_id != client.id:
        raise _dead_code()
    if row.used_at is not None:
        raise await _replayed(conn, code_hash)
    if clock.aware(row.expires_at) <= now:
        raise _dead_code()
    if redirect_uri != row.redirect_uri:
        raise _refused("invalid_grant", "The redirect_uri is not the one the authorization "
                       "code was issued for.")
    _check_pkce(row.code_challenge, params.get("code_verifier"))
    subject = await _subject(conn, user_id=row.user_id, workspace_id=row.workspace_id)
    if subject is None:  # the account was deleted (its codes with it, unless racing)
        raise _dead_code()
    granted = _user_scopes(row.scopes, client)
    refreshable = "offline_access" in granted
    grant_id = uuid.uuid4()
    expires = _expiries(settings, now, refreshable=refreshable)
    await conn.execute(insert(oauth_grants).values(
        id=grant_id, client_id=client.id, user_id=row.user_id, scopes=list(granted),
        workspace_id=subject.workspace.id if subject.workspace else None,
        session_id=row.session_id, auth_time=row.auth_time, created_at=now,
        expires_at=expires.grant, revoked_at=None))
    # Claimed only if still unused: of two redemptions racing, one sees no row here.
    claimed = await conn.execute(
        update(oauth_codes)
        .where(oauth_codes.c.code_hash == code_hash, oauth_codes.c.used_at.is_(None))
        .values(used_at=now, grant_id=grant_id))
    if claimed.rowcount != 1:
        await conn.execute(delete(oauth_grants).where(oauth_grants.c.id == grant_id))
        raise await _replayed(conn, code_hash)
    refresh = await _new_refresh_token(conn, grant_id, now, expires) if refreshable else None
    return await _issue(conn, settings, client=client, grant_id=grant_id, scopes=granted,
                        subject=subject, session_id=row.session_id,
                        auth_time=clock.aware(row.auth_time), nonce=row.nonce, now=now,
                        refresh_token=refresh)


async def _replayed(conn: AsyncConnection, code_hash: str) -> OAuthError:
    """A used code presented again: what it issued is revoked (RFC 6749 4.1.2), and refused.
    (A redemption racing the first one counts too: the first's tokens end.)"""
    grant_id = (await conn.execute(select(oauth_codes.c.grant_id)
                                   .where(oauth_codes.c.code_hash == code_hash))).scalar()
    if grant_id is not None:
        await _end(conn, oauth_grants.c.id == grant_id)
    return _dead_code()


@dataclass(frozen=True)
class _Expiries:
    access: datetime
    refresh: datetime | None
    grant: datetime  # the latest of them


def _expiries(settings: Settings, now: datetime, *, refreshable: bool) -> _Expiries:
    access = now + timedelta(minutes=settings.access_token_ttl_minutes)
    refresh = now + timedelta(days=settings.refresh_token_ttl_days) if refreshable else None
    return _Expiries(access, refresh, max(access, refresh or access))


async def _new_refresh_token(conn: AsyncConnection, grant_id: uuid.UUID, now: datetime,
                             expires: _Expiries) -> str:
    token = new_token(REFRESH_PREFIX)
    await conn.execute(insert(oauth_refresh_tokens).values(
        token_hash=hash_token(token), grant_id=grant_id, created_at=now,
        expires_at=expires.refresh, used_at=None))
    return token


_REFRESH_ROW = _with_membership(
    select(oauth_refresh_tokens.c.used_at, oauth_refresh_tokens.c.expires_at,
           oauth_refresh_tokens.c.created_at.label("issued_at"),
           oauth_grants.c.id.label("grant_id"), oauth_grants.c.client_id,
           oauth_grants.c.scopes, oauth_grants.c.workspace_id, oauth_grants.c.session_id,
           oauth_grants.c.auth_time, oauth_grants.c.revoked_at, *_SUBJECT_COLUMNS)
    .select_from(oauth_refresh_tokens)
    .join(oauth_grants, oauth_grants.c.id == oauth_refresh_tokens.c.grant_id)
    .join(users, users.c.id == oauth_grants.c.user_id),
    oauth_grants.c.workspace_id)


async def _refresh(conn: AsyncConnection, settings: Settings, *, client: Client,
                   params: Mapping[str, str]) -> Issued:
    """A refresh token for new tokens and its successor (RFC 6749 6, rotation per RFC 9700
    4.14.2), the claims read from the database now.

    A refresh token used before revokes its grant (the whole family, the newer token included).
    Two requests racing with one token are one use too many: the first rotates, the second
    finds it used and revokes the grant, so both end. There is no grace period: a relying
    party refreshes one request at a time (Authlib's clients hold a lock for it)."""
    token_hash = hash_token(_required(params, "refresh_token"))
    now = clock.now()
    row = (await conn.execute(_REFRESH_ROW.where(oauth_refresh_tokens.c.token_hash
                                                 == token_hash))).first()
    if row is None or row.client_id != client.id:
        raise _dead_refresh_token()
    if row.used_at is not None:
        await _end(conn, oauth_grants.c.id == row.grant_id)
        raise _dead_refresh_token()
    if row.revoked_at is not None or clock.aware(row.expires_at) <= now:
        raise _dead_refresh_token()
    kept = _user_scopes(row.scopes, client)
    if "offline_access" not in kept:  # the operator took it from the client since
        raise _refused("invalid_grant", "This app may no longer stay signed in: sign in "
                       "again.")
    asked = vocabulary.parse(params.get("scope"))
    if asked and not set(asked) <= set(kept):
        raise _refused("invalid_scope", "A refresh can only narrow the scope granted, never "
                       f"widen it: ask within {' '.join(kept)}.")
    issued = tuple(scope for scope in kept if not asked or scope in asked)
    subject = _subject_of(row)
    expires = _expiries(settings, now, refreshable=True)
    # The grant row is locked first (as every revocation does), found still live, and its
    # workspace dropped if the user is no longer a member there.
    live = await conn.execute(
        update(oauth_grants)
        .where(oauth_grants.c.id == row.grant_id, oauth_grants.c.revoked_at.is_(None))
        .values(expires_at=case((oauth_grants.c.expires_at > expires.grant,
                                 oauth_grants.c.expires_at), else_=expires.grant),
                workspace_id=subject.workspace.id if subject.workspace else None))
    if live.rowcount != 1:
        raise _dead_refresh_token()
    claimed = await conn.execute(
        update(oauth_refresh_tokens)
        .where(oauth_refresh_tokens.c.token_hash == token_hash,
               oauth_refresh_tokens.c.used_at.is_(None))
        .values(used_at=now))
    if claimed.rowcount != 1:  # used meanwhile by a request racing this one
        await _end(conn, oauth_grants.c.id == row.grant_id)
        raise _dead_refresh_token()
    refresh = await _new_refresh_token(conn, row.grant_id, now, expires)
    return await _issue(conn, settings, client=client, grant_id=row.grant_id, scopes=issued,
                        subject=subject, session_id=row.session_id,
                        auth_time=clock.aware(row.auth_time) if row.auth_time else None,
                        nonce=None, now=now, refresh_token=refresh)


async def _client_credentials(conn: AsyncConnection, settings: Settings, *, client: Client,
                              params: Mapping[str, str]) -> Issued:
    """A service token for a confidential client (RFC 6749 4.4): its own grant, no user."""
    if client.public:
        raise _refused("unauthorized_client", "A public client cannot use client_credentials: "
                       "it holds no secret.")
    held = tuple(scope for scope in client.scopes if scope in vocabulary.SERVICE_SCOPES)
    if not held:
        raise _refused("unauthorized_client", "This client holds no service scope: the "
                       "operator gives it some with `workspaces clients update`.")
    asked = vocabulary.parse(params.get("scope"))
    if asked and not set(asked) <= set(held):
        raise _refused("invalid_scope", f"This client may ask for {' '.join(held)} only.")
    granted = tuple(scope for scope in held if not asked or scope in asked)
    now = clock.now()
    expires = _expiries(settings, now, refreshable=False)
    grant_id = uuid.uuid4()
    await conn.execute(insert(oauth_grants).values(
        id=grant_id, client_id=client.id, user_id=None, scopes=list(granted),
        workspace_id=None, session_id=None, auth_time=None, created_at=now,
        expires_at=expires.grant, revoked_at=None))
    return await _issue(conn, settings, client=client, grant_id=grant_id, scopes=granted,
                        subject=None, session_id=None, auth_time=None, nonce=None, now=now,
                        refresh_token=None)


async def _issue(conn: AsyncConnection, settings: Settings, *, client: Client,
                 grant_id: uuid.UUID, scopes: tuple[str, ...], subject: Subject | None,
                 session_id: uuid.UUID | None, auth_time: datetime | None, nonce: str | None,
                 now: datetime, refresh_token: str | None) -> Issued:
    """The tokens of a grant: an access token, an ID token for `openid` (users only)."""
    signer = await keys.signing_key(conn, settings)
    workspace = subject.workspace if subject is not None and "workspace" in scopes else None
    access = tokens.mint_access_token(
        signer, settings, subject=str(subject.user.id) if subject else client.id,
        client_id=client.id, scopes=scopes, grant_id=grant_id, auth_time=auth_time,
        workspace=workspace, now=now)
    id_token = None
    if subject is not None and auth_time is not None and "openid" in scopes:
        id_token = tokens.mint_id_token(
            signer, settings, subject=str(subject.user.id), client_id=client.id,
            auth_time=auth_time, sid=str(session_id) if session_id else None, nonce=nonce,
            claims=await _profile_claims(conn, subject.user, scopes), workspace=workspace,
            now=now)
    return Issued(access.token, int(tokens.token_ttl(settings).total_seconds()), scopes,
                  id_token, refresh_token)


async def _profile_claims(conn: AsyncConnection, user: UserInfo,
                          scopes: tuple[str, ...]) -> dict[str, Any]:
    """The claims the user scopes give (OpenID Connect Core 5.4), as the database says now."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims |= {"email": user.email, "email_verified": user.verified}
    if "profile" in scopes:
        claims["name"] = user.name
    if "workspaces" in scopes:
        rows = await conn.execute(
            select(workspaces.c.id, workspaces.c.slug, workspaces.c.name, members.c.role)
            .join(members, members.c.workspace_id == workspaces.c.id)
            .where(members.c.user_id == user.id)
            .order_by(workspaces.c.name, workspaces.c.id))
        claims["workspaces"] = [{"id": str(r.id), "slug": r.slug, "name": r.name,
                                 "role": r.role} for r in rows]
    return claims


def _bearer_refusal(message: str) -> OAuthError:
    # RFC 6750 3.1; the same sentence whatever the check that failed.
    return OAuthError("invalid_token", message, status=401, headers={
        "WWW-Authenticate": f'Bearer realm="workspaces", error="invalid_token", '
                            f'error_description="{message}"'})


_DEAD_ACCESS = "The access token is invalid, expired or revoked."

_LIVE_GRANT = _with_membership(
    select(*_SUBJECT_COLUMNS).select_from(oauth_grants)
    .join(users, users.c.id == oauth_grants.c.user_id),
    oauth_grants.c.workspace_id)


async def userinfo(conn: AsyncConnection, settings: Settings, *,
                   token: str | None) -> dict[str, Any]:
    """The UserInfo response (OpenID Connect Core 5.3): the claims the access token's scopes
    give, read now. 401 for a token that is not a live one of ours, 403 without `openid`."""
    if not token:
        raise OAuthError("invalid_token", "Send the access token: `Authorization: Bearer "
                         "<token>`.", status=401,
                         headers={"WWW-Authenticate": 'Bearer realm="workspaces"'})
    try:
        claims = await keys.verified_access_token(conn, settings, token)
    except InvalidAccessToken:
        raise _bearer_refusal(_DEAD_ACCESS) from None
    if claims.user_id is None or "openid" not in claims.scopes:
        raise OAuthError("insufficient_scope", "The access token was not granted the openid "
                         "scope.", status=403, headers={"WWW-Authenticate": (
                             'Bearer realm="workspaces", error="insufficient_scope", '
                             'scope="openid"')})
    row = (await conn.execute(_LIVE_GRANT.where(
        oauth_grants.c.id == claims.gid, oauth_grants.c.revoked_at.is_(None),
        oauth_grants.c.user_id == claims.user_id))).first()
    if row is None:  # the grant was revoked, or the account deleted
        raise _bearer_refusal(_DEAD_ACCESS)
    subject = _subject_of(row)
    body = {"sub": str(subject.user.id),
            **await _profile_claims(conn, subject.user, claims.scopes)}
    if "workspace" in claims.scopes and subject.workspace is not None:
        body |= subject.workspace.claims()
    return body


async def revoke(conn: AsyncConnection, settings: Settings, *, client: Client,
                 token: str) -> None:
    """RFC 7009: end the grant of a refresh token or an access token of `client` (the whole
    family: revoking either ends both). A token that is unknown, invalid, expired or another
    client's is left alone, and the answer is the same (RFC 7009 2.2).

    The token's form tells which kind it is (a JWT, or an opaque `wsr_` token), so
    `token_type_hint` is not needed and not read (RFC 7009 2.1 allows that)."""
    if tokens.looks_like_jwt(token):
        try:
            claims = await keys.verified_access_token(conn, settings, token)
        except InvalidAccessToken:
            return
        if claims.client_id == client.id:
            await _end(conn, oauth_grants.c.id == claims.gid,
                       oauth_grants.c.client_id == client.id)
        return
    grant_id = (await conn.execute(
        select(oauth_refresh_tokens.c.grant_id)
        .join(oauth_grants, oauth_grants.c.id == oauth_refresh_tokens.c.grant_id)
        .where(oauth_refresh_tokens.c.token_hash == hash_token(token),
               oauth_grants.c.client_id == client.id))).scalar()
    if grant_id is not None:
        await _end(conn, oauth_grants.c.id == grant_id)


def _inactive() -> dict[str, Any]:
    return {"active": False}


async def introspect(conn: AsyncConnection, settings: Settings, *, client: Client,
                     token: str) -> dict[str, Any]:
    """RFC 7662: what a live token of `client` stands for; `{"active": false}` for anything
    else, another client's tokens included (a client learns only about its own). Confidential
    clients only: a public client cannot prove who asks (401 invalid_client)."""
    if client.public:
        raise OAuthError("invalid_client", "Introspection is for confidential clients: "
                         "authenticate with the client_secret.", status=401,
                         headers={"WWW-Authenticate": 'Basic realm="workspaces"'})
    if tokens.looks_like_jwt(token):
        return await _introspect_access(conn, settings, client=client, token=token)
    now = clock.now()
    row = (await conn.execute(_REFRESH_ROW.where(
        oauth_refresh_tokens.c.token_hash == hash_token(token)))).first()
    if (row is None or row.client_id != client.id or row.used_at is not None
            or row.revoked_at is not None or clock.aware(row.expires_at) <= now):
        return _inactive()
    subject = _subject_of(row)
    scopes = _user_scopes(row.scopes, client)
    body: dict[str, Any] = {
        "active": True, "token_type": "refresh_token", "scope": " ".join(scopes),
        "client_id": client.id, "sub": str(subject.user.id), "iss": tokens.issuer(settings),
        "iat": int(clock.aware(row.issued_at).timestamp()),
        "exp": int(clock.aware(row.expires_at).timestamp())}
    if "workspace" in scopes and subject.workspace is not None:
        body |= subject.workspace.claims()
    return body


async def _introspect_access(conn: AsyncConnection, settings: Settings, *, client: Client,
                             token: str) -> dict[str, Any]:
    try:
        claims = await keys.verified_access_token(conn, settings, token)
    except InvalidAccessToken:
        return _inactive()
    if claims.client_id != client.id:
        return _inactive()
    live = (await conn.execute(select(oauth_grants.c.id).where(
        oauth_grants.c.id == claims.gid, oauth_grants.c.client_id == client.id,
        oauth_grants.c.revoked_at.is_(None)))).first()
    if live is None:  # revoked, or deleted with its account or client
        return _inactive()
    body: dict[str, Any] = {
        "active": True, "token_type": "Bearer", "scope": " ".join(claims.scopes),
        "client_id": claims.client_id, "sub": claims.sub, "iss": tokens.issuer(settings),
        "aud": tokens.api_audience(settings), "jti": claims.jti,
        "iat": int(claims.issued_at.timestamp()), "exp": int(claims.expires_at.timestamp())}
    if claims.workspace is not None:
        body |= claims.workspace.claims()
    return body


async def _end(conn: AsyncConnection, *where: ColumnElement[bool]) -> int:
    """Revoke the live grants `where` picks and delete their refresh tokens (the grant rows
    first: the order the refresh grant locks them in); how many were live."""
    ended = [row.id for row in await conn.execute(
        update(oauth_grants).where(*where, oauth_grants.c.revoked_at.is_(None))
        .values(revoked_at=clock.now()).returning(oauth_grants.c.id))]
    if ended:
        await conn.execute(delete(oauth_refresh_tokens)
                           .where(oauth_refresh_tokens.c.grant_id.in_(ended)))
    return len(ended)


async def end_grants(conn: AsyncConnection, *, client_id: str,
                     user_id: uuid.UUID | None) -> int:
    """End every grant of `client_id` to `user_id` (None: the client's own service grants);
    how many had not been revoked before."""
    whose = (oauth_grants.c.user_id == user_id if user_id is not None
             else oauth_grants.c.user_id.is_(None))
    return await _end(conn, oauth_grants.c.client_id == client_id, whose)


async def end_user_grants(conn: AsyncConnection, *, user_id: uuid.UUID,
                          session_id: uuid.UUID | None = None) -> int:
    """End the user's grants to every client, or only those made in one browser session
    (`session_id`), as their sessions end: a password changed or reset, a session signed out
    from the account page. How many were live."""
    where = [oauth_grants.c.user_id == user_id]
    if session_id is not None:
        where.append(oauth_grants.c.session_id == session_id)
    return await _end(conn, *where)


async def delete_expired(conn: AsyncConnection, *, before: datetime) -> tuple[int, int]:
    """Delete the codes and the grants (their refresh tokens with them) whose every token
    expired before `before`; how many of each."""
    codes = await conn.execute(delete(oauth_codes).where(oauth_codes.c.expires_at < before))
    grants = await conn.execute(delete(oauth_grants).where(oauth_grants.c.expires_at < before))
    return codes.rowcount, grants.rowcount
