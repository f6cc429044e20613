"""Password reset: a one-time link mailed to the account's address.

Asking always gets the same answer, whether or not the address has an account (nobody learns
who has one). The link is valid for an hour and works once; asking again while it is live
mails the same link again, so nobody else's request ends the link in the owner's mailbox.
Choosing a new password through it signs out every session and API token of the account, and
a notice goes to the address.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.accounts import links
from workspaces.accounts.service import check_password
from workspaces.db import Transactions
from workspaces.errors import Gone, RateLimited
from workspaces.events import changes
from workspaces.events.tell import Actor, tell
from workspaces.mail.outbox import enqueue_account_email
from workspaces.models import ACCOUNT_TOKEN_PURPOSES, auth_tokens, users
from workspaces.oauth.grants import end_user_grants
from workspaces.security import Passwords, secret_key
from workspaces.settings import Settings
from workspaces.validation import normalize_email

RESET = "password_reset"
RESET_TTL = timedelta(hours=1)
RESET_PATH = "reset"  # the page at BASE_URL/reset/<token>


def _per_client(client: str, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"reset:client:{ratelimit.client_key(client)}",
                           settings.password_reset_limit_per_client_per_hour,
                           timedelta(hours=1), "password reset requests",
                           name="password_reset_limit_per_client_per_hour")


def _per_account(user_id: uuid.UUID, client: str,
                 settings: Settings) -> tuple[ratelimit.Limit, ...]:
    """Counted only when an email is queued, per account (requests for addresses without an
    account, look-alikes or `+tags`, cannot use up the real account's emails): from one client,
    so a stranger spends their own share and not the mailbox owner's; and from all clients, a
    higher ceiling against a mailbox flooded from many addresses."""
    return (
        ratelimit.Limit(f"reset:account:{user_id}:client:{ratelimit.client_key(client)}",
                        settings.password_reset_limit_per_account_per_hour,
                        timedelta(hours=1), "password reset emails",
                        name="password_reset_limit_per_account_per_hour"),
        ratelimit.Limit(f"reset:account:{user_id}",
                        settings.password_reset_limit_per_account_all_clients_per_hour,
                        timedelta(hours=1), "password reset emails",
                        name="password_reset_limit_per_account_all_clients_per_hour"),
    )


async def request_reset(tx: Transactions, *, email: str, client: str,
                        settings: Settings) -> None:
    """Mail a reset link when the address has an account. The answer does not say whether it
    has: a client over its own limit gets 429, an account over its limits silently gets no
    more emails (a stranger cannot flood a mailbox, nor learn from a 429 that it exists).

    While the account has a live link for its address, that link is mailed again rather than
    a new one made: whoever asked, the link already in the owner's mailbox keeps working, and
    once the ceiling is spent the owner still holds a live link."""
    address = normalize_email(email)  # 422 for what is no address at all: that tells nothing
    key = secret_key(settings)
    async with tx.write() as conn:
        await ratelimit.hit(conn, _per_client(client, settings))
        row = (await conn.execute(
            select(users.c.id, users.c.email).where(users.c.email == address))).first()
        if row is None:
            return
        try:
            async with conn.begin_nested():
                await ratelimit.hit(conn, *_per_account(row.id, client, settings))
        except RateLimited:
            return
        token = await links.live_token(conn, user_id=row.id, purpose=RESET, email=row.email,
                                       key=key) \
            or await links.issue_link(conn, user_id=row.id, purpose=RESET, email=row.email,
                                      ttl=RESET_TTL, key=key)
        await enqueue_account_email(
            conn, to=row.email, subject="Reset your Workspaces password",
            template="password_reset", values={"email": row.email},
            key=key, link_path=f"{RESET_PATH}/{token}")


def _dead_link() -> Gone:
    return Gone("This password reset link has expired, was used, or was replaced by a newer "
                "one. Ask for a new link from the sign-in page.", code="reset_link_invalid")


@dataclass(frozen=True)
class ResetLink:
    """A live link's account, as the reset page shows it."""

    user_id: uuid.UUID
    email: str


async def check_link(conn: AsyncConnection, token: str) -> ResetLink:
    """The account of a live (unused, unexpired) reset link; 410 `reset_link_invalid` else."""
    row = await links.live_link(conn, token, RESET)
    if row is None:
        raise _dead_link()
    return ResetLink(row.user_id, row.email)


async def reset_password(tx: Transactions, passwords: Passwords, *, token: str, password: str,
                         settings: Settings) -> str:
    """Set a new password through a live link; returns the account's address.

    The link is checked, the password hashed with no transaction open, then in one transaction
    the account's row is locked, the link claimed (one of two racing resets wins; the other
    gets 410) and found still mailed to the account's address (an address change that
    committed meanwhile wins: 410), the password set, every session and API token of the
    account revoked (and every app's grant: their refresh tokens), and the notice queued. The
    address is verified by the same token: whoever opened the link reads that mailbox.
    """
    check_password(password)
    async with tx.read() as conn:
        link = await check_link(conn, token)
    password_hash = await passwords.hash(password)
    now = clock.now()
    async with tx.write() as conn:
        # Locked before the link, in the order an address change takes them (its own link,
        # then this row, then every link): the change waits for this reset, or this reset sees
        # the new address.
        current = select(users.c.email).where(users.c.id == link.user_id)
        if conn.dialect.name == "postgresql":
            current = current.with_for_update()
        address = (await conn.execute(current)).scalar()
        claimed = await links.claim_link(conn, token, RESET)
        if claimed is None or claimed.email != address:
            raise _dead_link()
        # The link came through the address's mailbox: that verifies it (if it is still the
        # account's address). Someone who registered the address unverified loses the account
        # here: the password is the mailbox owner's now, and every session ends below.
        verified = (await conn.execute(
            update(users)
            .where(users.c.id == claimed.user_id, users.c.email == claimed.email,
                   users.c.email_verified_at.is_(None))
            .values(email_verified_at=now))).rowcount == 1
        await conn.execute(update(users).where(users.c.id == claimed.user_id)
                           .values(password_hash=password_hash, updated_at=now))
        await conn.execute(
            update(auth_tokens)
            .where(auth_tokens.c.user_id == claimed.user_id, auth_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now))
        await end_user_grants(conn, user_id=claimed.user_id)  # and the apps' refresh tokens
        for purpose in ACCOUNT_TOKEN_PURPOSES:  # asked for by whoever had the account before
            await links.end_links(conn, claimed.user_id, purpose)
        await tell(conn, changes.account_only(
            claimed.user_id, "password_reset", Actor.user(claimed.user_id, claimed.email),
            {"verified_now": verified}))
        await enqueue_account_email(
            conn, to=claimed.email, subject="Your Workspaces password was changed",
            template="password_changed",
            values={"email": claimed.email, "when": now.strftime("%d %B %Y at %H:%M UTC")},
            key=secret_key(settings))
    return str(claimed.email)
