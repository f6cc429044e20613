"""One-time links mailed to an address (`account_tokens`): password reset, address
verification, address change. Only the sha256 of a link's token is stored; a link works once,
until it expires, and a newer link of the same purpose for the account ends the older ones.
A token is made from the link's id with SECRET_KEY (`security.keyed_token`), so a live link can
be mailed again (`live_token`) instead of replaced."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.errors import Forbidden, NotAuthenticated
from workspaces.models import account_tokens
from workspaces.security import hash_token, keyed_token


async def end_links(conn: AsyncConnection, user_id: uuid.UUID, purpose: str) -> None:
    """End the account's open links of `purpose`."""
    await conn.execute(
        update(account_tokens)
        .where(account_tokens.c.user_id == user_id, account_tokens.c.purpose == purpose,
               account_tokens.c.used_at.is_(None))
        .values(used_at=clock.now()))


async def issue_link(conn: AsyncConnection, *, user_id: uuid.UUID, purpose: str, email: str,
                     ttl: timedelta, key: str) -> str:
    """A new link's token for `email` (where it is mailed), ending older ones of `purpose`."""
    link_id = uuid.uuid4()
    token = keyed_token(key, link_id.bytes)
    now = clock.now()
    await end_links(conn, user_id, purpose)
    await conn.execute(insert(account_tokens).values(
        id=link_id, user_id=user_id, purpose=purpose, token_hash=hash_token(token),
        email=email, created_at=now, expires_at=now + ttl))
    return token


async def live_token(conn: AsyncConnection, *, user_id: uuid.UUID, purpose: str, email: str,
                     key: str) -> str | None:
    """The token of the account's live link of `purpose` mailed to `email`, to mail it again;
    None when there is none (or it was made with another key)."""
    found = await newest_live_link(conn, user_id, purpose, email)
    if found is None:
        return None
    token = keyed_token(key, uuid.UUID(str(found.id)).bytes)
    return token if hash_token(token) == found.token_hash else None


def _live(token: str, purpose: str) -> Any:
    return (account_tokens.c.token_hash == hash_token(token),
            account_tokens.c.purpose == purpose, account_tokens.c.used_at.is_(None),
            account_tokens.c.expires_at > clock.now())


async def live_link(conn: AsyncConnection, token: str, purpose: str) -> Any | None:
    """The (user_id, email) of a live link, or None; changes nothing."""
    return (await conn.execute(
        select(account_tokens.c.user_id, account_tokens.c.email)
        .where(*_live(token, purpose)))).first()


async def newest_live_link(conn: AsyncConnection, user_id: uuid.UUID, purpose: str,
                           email: str | None = None) -> Any | None:
    """The account's newest live link of `purpose` (mailed to `email`, when given): its id,
    token_hash, email and expires_at; None when it has none."""
    mailed_to = () if email is None else (account_tokens.c.email == email,)
    return (await conn.execute(
        select(account_tokens.c.id, account_tokens.c.token_hash, account_tokens.c.email,
               account_tokens.c.expires_at)
        .where(account_tokens.c.user_id == user_id, account_tokens.c.purpose == purpose,
               *mailed_to, account_tokens.c.used_at.is_(None),
               account_tokens.c.expires_at > clock.now())
        .order_by(account_tokens.c.created_at.desc()).limit(1))).first()


async def claim_link(conn: AsyncConnection, token: str, purpose: str) -> Any | None:
    """Use a live link: (user_id, email), or None when it is dead or another request used it
    first (a conditional UPDATE: of two racing claims exactly one gets the row)."""
    if not token or len(token) > 200:
        return None
    return (await conn.execute(
        update(account_tokens).where(*_live(token, purpose)).values(used_at=clock.now())
        .returning(account_tokens.c.user_id, account_tokens.c.email))).first()


def check_holder(link_user_id: uuid.UUID, caller_id: uuid.UUID | None, address: str) -> None:
    """A link that changes an account (confirming or changing its address) is used by the
    account itself, signed in: then whoever reads the mailbox also holds the password. The
    mailbox alone is not enough (someone who registered another person's address would get it
    verified by that person's honest click; a mistyped new address would get the account).
    401 `sign_in_required`, or 403 `link_for_another_account`."""
    if caller_id is None:
        raise NotAuthenticated(f"Sign in as {address} to use this link.",
                               code="sign_in_required")
    if caller_id != link_user_id:
        raise Forbidden(f"This link is for the account {address}, not the one you are signed "
                        "in with. Sign out, and sign in as that account to use it.",
                        code="link_for_another_account")
