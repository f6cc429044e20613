"""Accounts: sign up, sign in, bearer tokens and browser sessions (stored only as hashes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.errors import Conflict, InvalidInput, NotAuthenticated
from workspaces.models import auth_tokens, members, users, workspaces
from workspaces.security import hash_password, hash_token, new_token, verify_password
from workspaces.settings import Settings
from workspaces.validation import clean_name, normalize_email

MIN_PASSWORD, MAX_PASSWORD = 8, 1024
TOKEN_PREFIX = "wst_"  # noqa: S105 (a marker that makes leaked tokens easy to scan for)


@dataclass(frozen=True)
class UserInfo:
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


_USER_COLUMNS = (users.c.id, users.c.email, users.c.name, users.c.created_at)


def user_of(row: Any) -> UserInfo:
    """The UserInfo in a row that selected the user columns (e.g. `token_user_query`)."""
    return UserInfo(row.id, row.email, row.name, clock.aware(row.created_at))


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"Choose a password of {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
                           code="invalid_password", field="password")


async def sign_up(conn: AsyncConnection, *, email: str, password: str, name: str) -> UserInfo:
    address = normalize_email(email)
    display_name = clean_name(name, field="name")
    check_password(password)
    now = clock.now()
    user_id = uuid.uuid4()
    try:
        async with conn.begin_nested():
            await conn.execute(insert(users).values(
                id=user_id, email=address, name=display_name,
                password_hash=hash_password(password), created_at=now, updated_at=now,
            ))
    except IntegrityError:
        raise Conflict(f"An account for {address} exists already; sign in instead.",
                       code="email_taken", field="email") from None
    return UserInfo(user_id, address, display_name, now)


SIGNIN_WINDOW = timedelta(minutes=15)


async def sign_in(conn: AsyncConnection, *, email: str, password: str, client: str,
                  settings: Settings) -> UserInfo:
    """Check the password. Every attempt is counted per account and per client address; the
    caller must commit a failed attempt too (it answers 401 without raising through the
    transaction), so guessing hits 429 after the limit."""
    try:
        address = normalize_email(email)
    except InvalidInput:
        address = ""
    for key, limit in ((f"signin:account:{address}", settings.signin_limit_per_account),
                       (f"signin:client:{client}", settings.signin_limit_per_address)):
        await ratelimit.hit(conn, key=key, limit=limit, window=SIGNIN_WINDOW,
                            what="sign-in attempts")
    row = (await conn.execute(
        select(*_USER_COLUMNS, users.c.password_hash).where(users.c.email == address)
    )).first()
    if not verify_password(row.password_hash if row else None, password) or row is None:
        raise NotAuthenticated("The email or password is wrong.", code="invalid_credentials")
    return user_of(row)


async def delete_account(conn: AsyncConnection, *, user: UserInfo) -> None:
    """Delete the account, unless it is the only owner of a workspace (hand it over first)."""
    other_owners = (
        select(members.c.workspace_id)
        .where(members.c.role == "owner", members.c.user_id != user.id)
    )
    sole = list((await conn.execute(
        select(workspaces.c.slug).join(members, members.c.workspace_id == workspaces.c.id)
        .where(members.c.user_id == user.id, members.c.role == "owner",
               workspaces.c.id.not_in(other_owners))
    )).scalars())
    if sole:
        raise Conflict(f"You are the only owner of {', '.join(sole)}; delete those workspaces "
                       "or make someone else an owner first.", code="last_owner")
    await conn.execute(delete(users).where(users.c.id == user.id))


async def get_user_by_email(conn: AsyncConnection, email: str) -> UserInfo | None:
    row = (await conn.execute(select(*_USER_COLUMNS).where(users.c.email == email))).first()
    return user_of(row) if row else None


async def issue_token(
    conn: AsyncConnection, *, user_id: uuid.UUID, kind: str, ttl: timedelta
) -> str:
    """A new bearer token or session for the user; only its hash is stored."""
    token = new_token(TOKEN_PREFIX)
    now = clock.now()
    await conn.execute(insert(auth_tokens).values(
        id=uuid.uuid4(), user_id=user_id, token_hash=hash_token(token), kind=kind,
        created_at=now, expires_at=now + ttl,
    ))
    return token


async def revoke_token(conn: AsyncConnection, *, token: str) -> None:
    await conn.execute(
        update(auth_tokens)
        .where(auth_tokens.c.token_hash == hash_token(token), auth_tokens.c.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


# Built once: a request binds values instead of building and hashing a new statement.
TOKEN_USER = (
    select(*_USER_COLUMNS)
    .join(auth_tokens, auth_tokens.c.user_id == users.c.id)
    .where(
        auth_tokens.c.token_hash == bindparam("token_hash"),
        auth_tokens.c.kind == bindparam("kind"),
        auth_tokens.c.revoked_at.is_(None),
        auth_tokens.c.expires_at > bindparam("now"),
    )
)


def token_params(token: str, kind: str) -> dict[str, Any]:
    """The values for `TOKEN_USER`: the user a live (unexpired, unrevoked) token belongs to."""
    return {"token_hash": hash_token(token), "kind": kind, "now": clock.now()}


async def user_for_token(conn: AsyncConnection, *, token: str, kind: str) -> UserInfo | None:
    """The user a live token belongs to, in one query."""
    row = (await conn.execute(TOKEN_USER, token_params(token, kind))).first()
    return user_of(row) if row else None
