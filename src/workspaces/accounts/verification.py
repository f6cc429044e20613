"""Verified addresses: a link mailed to the address proves it reaches the account's owner.

Sign-up mails the first link; the owner can ask for another (a few an hour). Using a link,
signed in as the account (`links.check_holder`), sets `users.email_verified_at`. A password
reset through the mailbox verifies too (see `recovery`), and so does confirming an address
change (`profile`). Accepting an invite does
not: whoever created the invite was shown the same link, so it proves nothing about the
mailbox. What an unverified account may do is in docs/security.md ("Verified addresses").
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.accounts import links
from workspaces.errors import Conflict, Gone
from workspaces.events import changes
from workspaces.events.tell import Actor, tell
from workspaces.mail.outbox import enqueue_account_email
from workspaces.models import users
from workspaces.security import secret_key
from workspaces.settings import Settings

VERIFY = "verify_email"
VERIFY_TTL = timedelta(days=2)
VERIFY_PATH = "verify"  # the page at BASE_URL/verify/<token>


async def send_verification(conn: AsyncConnection, *, user_id: uuid.UUID, email: str,
                            settings: Settings) -> None:
    """Queue a verification link for the account's address (ending older ones)."""
    token = await links.issue_link(conn, user_id=user_id, purpose=VERIFY, email=email,
                                   ttl=VERIFY_TTL, key=secret_key(settings))
    await enqueue_account_email(
        conn, to=email, subject="Confirm your email address for Workspaces",
        template="verify_email", values={"email": email}, key=secret_key(settings),
        link_path=f"{VERIFY_PATH}/{token}")


def resend_limit(user_id: uuid.UUID, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"verify:account:{user_id}",
                           settings.verification_limit_per_account_per_hour,
                           timedelta(hours=1), "verification emails",
                           name="verification_limit_per_account_per_hour")


async def resend_verification(conn: AsyncConnection, *, user_id: uuid.UUID,
                              settings: Settings) -> str:
    """Mail a new link to the signed-in account's address; returns the address. 409
    `already_verified` when there is nothing to prove, 429 past the hourly limit."""
    row = (await conn.execute(
        users.select().with_only_columns(users.c.email, users.c.email_verified_at)
        .where(users.c.id == user_id))).one()
    if row.email_verified_at is not None:
        raise Conflict(f"{row.email} is verified already.", code="already_verified")
    await ratelimit.hit(conn, resend_limit(user_id, settings))
    await send_verification(conn, user_id=user_id, email=row.email, settings=settings)
    return str(row.email)


def _dead_link() -> Gone:
    return Gone("This confirmation link has expired, was used, or was replaced by a newer one. "
                "Sign in and ask for a new one from your home page.",
                code="verify_link_invalid")


async def check_link(conn: AsyncConnection, token: str) -> tuple[uuid.UUID, str]:
    """The account and address of a live verification link; 410 `verify_link_invalid` else."""
    row = await links.live_link(conn, token, VERIFY)
    if row is None:
        raise _dead_link()
    return row.user_id, str(row.email)


async def verify_email(conn: AsyncConnection, *, token: str, user_id: uuid.UUID | None) -> str:
    """Use a verification link, signed in as its account (`links.check_holder`): the address
    is verified; returns it. The link must be live and the account's address still the one it
    was mailed to (410 else)."""
    live = await links.live_link(conn, token, VERIFY)
    if live is None:
        raise _dead_link()
    links.check_holder(live.user_id, user_id, live.email)
    claimed = await links.claim_link(conn, token, VERIFY)
    if claimed is None:
        raise _dead_link()
    done = await conn.execute(
        update(users)
        .where(users.c.id == claimed.user_id, users.c.email == claimed.email)
        .values(email_verified_at=func.coalesce(users.c.email_verified_at, clock.now())))
    if done.rowcount != 1:  # the address changed since the link was mailed
        raise _dead_link()
    await tell(conn, changes.account_only(
        claimed.user_id, "email_verified", Actor.user(claimed.user_id, claimed.email),
        {"email": claimed.email}))
    return str(claimed.email)
