"""Invitations: create, list, resend, revoke, expire, preview, accept, decline.

The raw token exists only in the email link (sealed in the outbox until sent) and once in the
create/resend response; the table keeps its sha256. An invite past `expires_at` is `expired`
everywhere, although its stored status stays `pending` (so it can be re-sent).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit, rows
from workspaces.accounts.service import (
    NewAccount,
    Session,
    UserInfo,
    address_refusal,
    check_password,
    create_account,
    get_user_by_email,
    issue_token,
)
from workspaces.accounts.verification import send_verification
from workspaces.db import Transactions, dialect_insert
from workspaces.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    counted,
)
from workspaces.events import changes
from workspaces.events.tell import ANONYMOUS, SYSTEM, Actor, WorkspaceRef, tell
from workspaces.invites import statuses
from workspaces.mail.outbox import InviteEmail, accept_url, enqueue_invite, quoted
from workspaces.members import store
from workspaces.members.service import MemberInfo
from workspaces.models import PENDING_ONLY, invites, members, outbox, users, workspaces
from workspaces.pagination import Cursor, check_limit, keyset, page_of
from workspaces.roles import check_role
from workspaces.security import Passwords, hash_token, new_token, secret_key
from workspaces.settings import Settings
from workspaces.validation import check_all, clean_name, email_skeleton, normalize_email
from workspaces.workspaces.service import Access, hold_role


@dataclass(frozen=True, slots=True)
class InviteInfo:
    id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    role: str
    status: str  # effective: pending | expired | accepted | revoked | declined
    expires_at: datetime
    created_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    declined_at: datetime | None
    created_by_user_id: uuid.UUID | None
    created_by_name: str | None
    email_status: str | None  # the latest email's delivery: pending | sent | failed | logged
    email_error: str | None  # why the latest attempt failed (server reply or unreachable)
    created_by_email: str | None = None


def inviter_label(name: str | None, email: str | None) -> str | None:
    """How an inviter is shown to the invitee: the name they chose, quoted, next to their real
    address, so a name cannot pose as an address or a brand."""
    if email is None:
        return None
    return f"{quoted(name)} ({email})" if name and name != email else email


@dataclass(frozen=True)
class IssuedInvite:
    """An invite with its raw link, shown once to whoever created or re-sent it."""

    invite: InviteInfo
    accept_url: str


@dataclass(frozen=True, slots=True)
class Preview:
    """What the invitee sees of an invite; the API's `InvitePreview` field for field, in its
    order, and the workspace's slug (for the page's links only)."""

    workspace_name: str
    inviter_name: str | None
    inviter_email: str | None
    email: str
    role: str
    status: str
    expires_at: datetime
    workspace_slug: str

    @property
    def inviter(self) -> str | None:
        """The inviter as the invitee reads it (`inviter_label`)."""
        return inviter_label(self.inviter_name, self.inviter_email)


def _latest_email(column: Any) -> Any:
    return (select(column).where(outbox.c.invite_id == invites.c.id)
            .order_by(outbox.c.created_at.desc()).limit(1).scalar_subquery())


_COLUMNS = (
    invites.c.id, invites.c.workspace_id, invites.c.email, invites.c.role, invites.c.status,
    invites.c.expires_at, invites.c.created_at, invites.c.accepted_at, invites.c.revoked_at,
    invites.c.declined_at, invites.c.created_by_user_id, users.c.name.label("created_by_name"),
    users.c.email.label("created_by_email"),
)
_EMAIL_COLUMNS = (  # for admins' views only: the invitee's page does not show them
    _latest_email(outbox.c.status).label("email_status"),
    _latest_email(outbox.c.last_error).label("email_error"),
)


def _info(row: Any, now: datetime) -> InviteInfo:
    def at(value: datetime | None) -> datetime | None:
        return clock.aware(value) if value is not None else None

    return InviteInfo(
        row.id, row.workspace_id, row.email, row.role,
        statuses.effective(row.status, row.expires_at, now),
        clock.aware(row.expires_at), clock.aware(row.created_at), at(row.accepted_at),
        at(row.revoked_at), at(row.declined_at), row.created_by_user_id, row.created_by_name,
        getattr(row, "email_status", None), getattr(row, "email_error", None),
        row.created_by_email,
    )


def _select(*, email: bool = True) -> Any:
    columns = (*_COLUMNS, *_EMAIL_COLUMNS) if email else _COLUMNS
    return select(*columns).outerjoin(users, users.c.id == invites.c.created_by_user_id)


async def get_invite(conn: AsyncConnection, *, workspace_id: uuid.UUID,
                     invite_id: uuid.UUID) -> InviteInfo:
    """One invite of the workspace; 404 `invite_not_found` else."""
    return await _get(conn, workspace_id, invite_id)


async def _get(conn: AsyncConnection, workspace_id: uuid.UUID, invite_id: uuid.UUID) -> InviteInfo:
    row = (await conn.execute(
        _select().where(invites.c.id == invite_id, invites.c.workspace_id == workspace_id)
    )).first()
    if row is None:
        raise NotFound("No such invite in this workspace.", code="invite_not_found")
    return _info(row, clock.now())


def _check_days(days: int | None, settings: Settings) -> int:
    value = settings.invite_ttl_days if days is None else days
    if not 1 <= value <= 30:
        raise InvalidInput("expires_in_days must be 1 to 30.", code="invalid_expiry",
                           field="expires_in_days")
    return value


async def _queue_email(conn: AsyncConnection, *, access: Access, invite: InviteInfo, token: str,
                       settings: Settings, first: bool = False) -> None:
    who = access.principal
    if isinstance(who, UserInfo):
        inviter, address = inviter_label(who.name, who.email) or "", who.email
    else:  # a service client: named as the operator registered it
        inviter, address = quoted(who.name), None
    await enqueue_invite(
        conn,
        email=InviteEmail(invite.email, access.workspace.name, inviter, invite.role,
                          invite.expires_at, inviter_email=address),
        token=token, workspace_id=access.workspace.id, invite_id=invite.id,
        key=secret_key(settings), first=first,
    )


def _sender_limits(access: Access, settings: Settings) -> tuple[ratelimit.Limit, ...]:
    """Invite emails per workspace and per inviting user an hour (new workspaces bring no new
    budget)."""
    hour = timedelta(hours=1)
    return (
        ratelimit.Limit(f"invites:{access.workspace.id}", settings.invite_rate_limit_per_hour,
                        hour, "invitations for this workspace", name="invite_rate_limit_per_hour"),
        ratelimit.Limit(f"invites:by:{access.key}", settings.invite_limit_per_user_per_hour,
                        hour, "invitations sent by you", name="invite_limit_per_user_per_hour"),
    )


def _recipient_limits(access: Access, address: str, settings: Settings, *,
                      new_invite: bool) -> tuple[ratelimit.Limit, ...]:
    """Invite emails to one mailbox a day from this inviting user; and new invites to it from
    everyone, a higher ceiling that counts an invite once however often it is re-sent. So no
    address can be flooded, and no sender spends another's budget for it."""
    day, mailbox = timedelta(days=1), ratelimit.mailbox_key(address)
    per_sender = ratelimit.Limit(
        f"invites:to:{mailbox}:by:{access.key}", settings.invite_limit_per_recipient_per_day,
        day, "invitations from you to this address", name="invite_limit_per_recipient_per_day")
    if not new_invite:
        return (per_sender,)
    return (per_sender, ratelimit.Limit(
        f"invites:to:{mailbox}", settings.invite_limit_per_recipient_all_senders_per_day, day,
        "invitations to this address", name="invite_limit_per_recipient_all_senders_per_day"))


async def create_invite(
    conn: AsyncConnection, *, access: Access, email: str, role: str,
    expires_in_days: int | None, settings: Settings,
) -> IssuedInvite:
    """Invite `address` with `role`. The attempt is counted against the sender's limits
    before anything about the address is answered (refused ones too, as for sign-ups: each
    tells whether an address is a member or looks like another account's); the recipient's
    limits count only an email really queued, last (their rows stay locked until commit)."""
    access = await hold_role(conn, access)
    access.require("admin", "invite people")
    address = normalize_email(email)
    check_role(role)
    access.require_grant(role, f"invite someone as {role}")
    days = _check_days(expires_in_days, settings)
    await ratelimit.hit(conn, *_sender_limits(access, settings))
    workspace_id = access.workspace.id
    pending = (select(invites.c.id, invites.c.expires_at, invites.c.role)
               .where(invites.c.workspace_id == workspace_id, invites.c.email == address,
                      invites.c.status == "pending").subquery())
    existing = (await conn.execute(  # one round trip for every question
        select(
            select(members.c.user_id).join(users, users.c.id == members.c.user_id)
            .where(members.c.workspace_id == workspace_id, users.c.email == address)
            .exists().label("is_member"),
            select(users.c.id).where(users.c.email_skeleton == email_skeleton(address),
                                     users.c.email != address)
            .exists().label("looks_like_another"),
            select(pending.c.id).scalar_subquery().label("id"),
            select(pending.c.expires_at).scalar_subquery().label("expires_at"),
            select(pending.c.role).scalar_subquery().label("role"),
        )
    )).one()
    if existing.is_member:
        raise counted(Conflict(f"{address} is already a member of {access.workspace.name}.",
                               code="already_member"))
    if existing.looks_like_another:  # its invitee could never sign up: a trap, or a typo
        raise counted(InvalidInput(
            f"{address} looks like the address of another account (look-alike letters); check "
            "the address you meant.", code="email_confusable", field="email"))
    now = clock.now()
    if existing.id is not None:
        if not statuses.expired(existing.expires_at, now):
            raise counted(Conflict(f"{address} already has a pending invite; resend or revoke "
                                   "it.", code="invite_exists", invite_id=str(existing.id)))
        access.require_grant(existing.role, "replace an expired invite for the role "
                                            f"{existing.role}")
        # An expired invite is replaced: revoke it so the new one is the only pending one.
        await conn.execute(update(invites).where(invites.c.id == existing.id)
                           .values(status="revoked", revoked_at=now))
        await tell(conn, changes.invite_revoked(
            access.ref, changes.invite(existing.id, address, existing.role, "revoked",
                                       clock.aware(existing.expires_at)),
            access.actor, replaced=True))
    token = new_token()
    invite_id = uuid.uuid4()
    expires_at = now + timedelta(days=days)
    created = (await conn.execute(
        dialect_insert(conn.dialect.name)(invites).values(
            id=invite_id, workspace_id=workspace_id, email=address, role=role,
            token=hash_token(token), status="pending", expires_at=expires_at, created_at=now,
            created_by_user_id=access.user.id if access.user else None,
        )
        # A concurrent request invited the same address first: the partial unique index on
        # pending invites decides, without a savepoint.
        .on_conflict_do_nothing(index_elements=[invites.c.workspace_id, invites.c.email],
                                index_where=PENDING_ONLY)  # as the index says it
        .returning(invites.c.id)
    )).first()
    if created is None:
        raise Conflict(f"{address} already has a pending invite; resend or revoke it.",
                       code="invite_exists")
    user = access.user
    invite = InviteInfo(invite_id, workspace_id, address, role, "pending", expires_at, now,
                        None, None, None, user.id if user else None,
                        user.name if user else None, "pending", None,
                        user.email if user else None)
    await _queue_email(conn, access=access, invite=invite, token=token, settings=settings,
                       first=True)
    await tell(conn, changes.invite_created(access.ref, _subject(invite), access.actor))
    await ratelimit.hit(conn, *_recipient_limits(access, address, settings, new_invite=True))
    return IssuedInvite(invite, accept_url(settings.base_url, token))


def _subject(invite: InviteInfo) -> dict[str, Any]:
    """An invite as its events show it."""
    return changes.invite(invite.id, invite.email, invite.role, invite.status,
                          invite.expires_at)


async def list_invites(
    conn: AsyncConnection, *, access: Access, status: str | None, limit: int,
    cursor: str | None,
) -> tuple[list[InviteInfo], str | None]:
    """Newest first, `limit` per page; returns the page and the cursor of the next one."""
    access.require("admin", "see invites")
    check_limit(limit)
    after = Cursor.decode(cursor)
    now = clock.now()
    query = _select().where(invites.c.workspace_id == access.workspace.id)
    if status is not None:
        if status not in statuses.STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(statuses.STATUSES)}.",
                               code="invalid_status", field="status")
        query = query.where(statuses.where(status, invites.c.status, invites.c.expires_at, now))
    query = keyset(query, invites.c.created_at, invites.c.id, after, limit)
    found = [_info(row, now) for row in await conn.execute(query)]
    return page_of(found, limit, lambda i: Cursor(i.created_at, i.id))


async def _lock_invite(conn: AsyncConnection, access: Access, invite_id: uuid.UUID) -> InviteInfo:
    if conn.dialect.name == "postgresql":
        await conn.execute(select(invites.c.id).where(invites.c.id == invite_id)
                           .with_for_update())
    return await _get(conn, access.workspace.id, invite_id)


async def resend_invite(conn: AsyncConnection, *, access: Access, invite_id: uuid.UUID,
                        settings: Settings) -> IssuedInvite:
    """New token (the old link stops working), new expiry, new email; pending or expired only."""
    access = await hold_role(conn, access)
    access.require("admin", "resend invites")
    invite = await _lock_invite(conn, access, invite_id)
    access.require_grant(invite.role, f"resend an invite for the role {invite.role}")
    if invite.status not in statuses.OPEN:
        raise Conflict(f"This invite is {invite.status}; only pending or expired invites can be "
                       "re-sent.", code=f"invite_{invite.status}")
    token = new_token()
    now = clock.now()
    old_expiry = invite.expires_at
    expires_at = now + timedelta(days=settings.invite_ttl_days)
    await conn.execute(update(invites).where(invites.c.id == invite_id)
                       .values(token=hash_token(token), expires_at=expires_at,
                               expiry_told_at=None))
    invite = await _get(conn, access.workspace.id, invite_id)
    await _queue_email(conn, access=access, invite=invite, token=token, settings=settings)
    await tell(conn, changes.invite_resent(access.ref, _subject(invite), old_expiry,
                                           access.actor))
    await ratelimit.hit(conn, *_sender_limits(access, settings),
                        *_recipient_limits(access, invite.email, settings, new_invite=False))
    return IssuedInvite(invite, accept_url(settings.base_url, token))


async def revoke_invite(conn: AsyncConnection, *, access: Access,
                        invite_id: uuid.UUID) -> InviteInfo:
    access = await hold_role(conn, access)
    access.require("admin", "revoke invites")
    invite = await _lock_invite(conn, access, invite_id)
    access.require_grant(invite.role, f"revoke an invite for the role {invite.role}")
    if invite.status not in statuses.OPEN:
        raise Conflict(f"This invite is {invite.status} and cannot be revoked.",
                       code=f"invite_{invite.status}")
    await conn.execute(update(invites).where(invites.c.id == invite_id)
                       .values(status="revoked", revoked_at=clock.now()))
    revoked = await _get(conn, access.workspace.id, invite_id)
    await tell(conn, changes.invite_revoked(access.ref, _subject(revoked), access.actor))
    return revoked


@dataclass(frozen=True, slots=True)
class _ByToken:
    invite: InviteInfo
    workspace_name: str
    workspace_slug: str


# Statements on the invitee's hot paths (preview, accept) are built once with bind parameters:
# building them per request cost more Python than sending them (see docs/benchmarks.md).
_BY_TOKEN = (_select(email=False).add_columns(workspaces.c.name.label("workspace_name"),
                                              workspaces.c.slug.label("workspace_slug"))
             .join(workspaces, workspaces.c.id == invites.c.workspace_id)
             .where(invites.c.token == bindparam("token_hash")))
_BY_TOKEN_LOCKED = _BY_TOKEN.with_for_update(of=invites)
# The invitee's view (`preview`), the API's hottest public read: only the columns it shows.
_PREVIEW = (select(workspaces.c.name.label("workspace_name"),
                   users.c.name.label("inviter_name"), users.c.email.label("inviter_email"),
                   invites.c.email, invites.c.role, invites.c.status, invites.c.expires_at,
                   workspaces.c.slug.label("workspace_slug"))
            .select_from(invites)
            .join(workspaces, workspaces.c.id == invites.c.workspace_id)
            .outerjoin(users, users.c.id == invites.c.created_by_user_id)
            .where(invites.c.token == bindparam("token_hash")))

def _claim(match: Any) -> Any:
    """The conditional UPDATE that claims a pending, unexpired invite for the user's address."""
    return (
        update(invites)
        .where(match,
               statuses.where("pending", invites.c.status, invites.c.expires_at,
                              bindparam("now")),
               invites.c.email == bindparam("user_email"))
        .values(status="accepted", accepted_at=bindparam("now"))
        .returning(invites.c.id, invites.c.workspace_id, invites.c.role, invites.c.email,
                   invites.c.expires_at,
                   # what the caller shows next, in the same round trip
                   select(workspaces.c.slug).where(workspaces.c.id == invites.c.workspace_id)
                   .scalar_subquery().label("workspace_slug"),
                   select(workspaces.c.name).where(workspaces.c.id == invites.c.workspace_id)
                   .scalar_subquery().label("workspace_name"))
    )


_CLAIM = _claim(invites.c.token == bindparam("token_hash"))
_CLAIM_BY_ID = _claim(invites.c.id == bindparam("invite_id"))
# An invite addressed to the user, by id ("Invitations for you").
_FOR_USER = (_select(email=False).add_columns(workspaces.c.name.label("workspace_name"),
                                              workspaces.c.slug.label("workspace_slug"))
             .join(workspaces, workspaces.c.id == invites.c.workspace_id)
             .where(invites.c.id == bindparam("invite_id"),
                    invites.c.email == bindparam("user_email")))


async def _row_by_token(conn: AsyncConnection, query: Any, token: str) -> Any:
    """The row `query` finds for a link's token; 404 `invite_not_found` else."""
    if not token or len(token) > 200:
        raise NotFound("This invite link is not valid.", code="invite_not_found")
    row = await rows.fetch_first(conn, query, {"token_hash": hash_token(token)})
    if row is None:
        raise NotFound("This invite link is not valid: it may have been re-sent with a new "
                       "link, or mistyped.", code="invite_not_found")
    return row


async def _by_token(conn: AsyncConnection, token: str, *, lock: bool = False) -> _ByToken:
    query = _BY_TOKEN_LOCKED if lock and conn.dialect.name == "postgresql" else _BY_TOKEN
    row = await _row_by_token(conn, query, token)
    return _ByToken(_info(row, clock.now()), row.workspace_name, row.workspace_slug)


def _check_usable(found: _ByToken) -> None:
    invite = found.invite
    who = inviter_label(invite.created_by_name, invite.created_by_email) or \
        "the workspace's admins"
    if invite.status == "expired":
        raise Gone(f"This invite to {found.workspace_name} expired on "
                   f"{invite.expires_at:%d %B %Y}; ask {who} to send it again.",
                   code="invite_expired")
    if invite.status == "revoked":
        raise Gone(f"This invite to {found.workspace_name} was withdrawn; ask {who} for a new "
                   "one.", code="invite_revoked")
    if invite.status in ("accepted", "declined"):
        raise Gone(f"This invite to {found.workspace_name} has already been {invite.status}.",
                   code="invite_used")


def _check_email(found: _ByToken, user: UserInfo) -> None:
    if user.email != found.invite.email:
        raise Forbidden(f"You are signed in as {user.email}; this invite is for "
                        f"{found.invite.email}. Sign out and sign in as {found.invite.email}.",
                        code="email_mismatch")


async def preview(conn: AsyncConnection, *, token: str) -> Preview:
    """What the link's invite is for, as its invitee sees it (whatever its status)."""
    row = await _row_by_token(conn, _PREVIEW, token)
    return Preview(row.workspace_name, row.inviter_name, row.inviter_email, row.email, row.role,
                   statuses.effective(row.status, row.expires_at, clock.now()),
                   clock.aware(row.expires_at), row.workspace_slug)


@dataclass(frozen=True)
class Joined:
    """An accepted invite: the new membership and the workspace it is in."""

    member: MemberInfo
    workspace_slug: str
    workspace_name: str


async def accept_invite(conn: AsyncConnection, *, token: str, user: UserInfo) -> Joined:
    """Join with the invite's role; membership and 'accepted' commit together, exactly once.

    The happy path is one conditional UPDATE (pending, unexpired, for this user's address) that
    claims the invite, then the membership insert: concurrent accepts cannot both claim it.
    Only when nothing was claimed is the invite read, to say why.
    """
    now = clock.now()
    claimed = (await conn.execute(
        _CLAIM, {"token_hash": hash_token(token), "now": now, "user_email": user.email}
    )).first() if token and len(token) <= 200 else None
    if claimed is None:
        found = await _by_token(conn, token)
        _check_usable(found)
        _check_email(found, user)
        raise Gone(f"This invite to {found.workspace_name} has already been used.",
                   code="invite_used")  # claimed by a concurrent request since our UPDATE
    return await _join_claimed(conn, claimed, user, now)


async def _join_claimed(conn: AsyncConnection, claimed: Any, user: UserInfo,
                        now: datetime) -> Joined:
    """The membership for a claimed invite, told with the invite's acceptance."""
    ref = WorkspaceRef(claimed.workspace_id, claimed.workspace_slug)
    actor = Actor.user(user.id, user.email)
    accepted = changes.invite_accepted(ref, changes.invite(
        claimed.id, claimed.email, claimed.role, "accepted", clock.aware(claimed.expires_at)),
        user.id, actor)
    if not await store.add(conn, ref, user_id=user.id, email=user.email, name=user.name,
                           role=claimed.role, how="invite", actor=actor, at=now,
                           before=(accepted,), invite_id=claimed.id):
        # raising rolls the claim back: the invite stays pending
        raise Conflict(f"You are already a member of {claimed.workspace_name}.",
                       code="already_member")
    return Joined(MemberInfo(user.id, user.email, user.name, claimed.role, now),
                  claimed.workspace_slug, claimed.workspace_name)


async def join(tx: Transactions, passwords: Passwords, *, token: str, name: str, password: str,
               session: Session, settings: Settings) -> tuple[UserInfo, Joined, str]:
    """A newcomer signs up with the invited address (fixed) and joins.

    The link is checked first (a dead link costs no hash, and says so before anything about
    the form), the password hashed with no transaction open, then the account, the membership
    and a token are written in one transaction, which checks the invite again.
    """
    async with tx.read() as conn:
        found = await _by_token(conn, token)
        _check_usable(found)
        if normalize_email(found.invite.email) != found.invite.email:  # made before NFKC
            raise InvalidInput(f"This invite is made out to {found.invite.email!r}, written in "
                               "a form accounts no longer take; ask for a new invite.",
                               code="email_confusable")
        if await get_user_by_email(conn, found.invite.email):
            raise NotAuthenticated(f"An account for {found.invite.email} exists; sign in to "
                                   "accept.", code="sign_in_required")
        refusal = await address_refusal(conn, found.invite.email)  # before any hash
        if refusal:
            raise refusal
    display_name, _ = check_all(lambda: clean_name(name, field="name"),
                                lambda: check_password(password))
    account = NewAccount(found.invite.email, display_name, await passwords.hash(password))
    async with tx.write() as conn:
        user = await create_account(conn, account=account)
        # Not verified by the invite's link: its creator saw the same link. A link of its own.
        await send_verification(conn, user_id=user.id, email=user.email, settings=settings)
        joined = await accept_invite(conn, token=token, user=user)
        issued = await issue_token(conn, user_id=user.id, session=session)
    return user, joined, issued


async def decline_invite(conn: AsyncConnection, *, token: str, user: UserInfo | None) -> None:
    """The invitee says no. Anyone holding the link may decline; a signed-in user must match."""
    found = await _by_token(conn, token, lock=True)
    _check_usable(found)
    if user is not None:
        _check_email(found, user)
    await _decline(conn, found, user)


async def _decline(conn: AsyncConnection, found: _ByToken, user: UserInfo | None) -> None:
    claimed = await conn.execute(
        update(invites).where(invites.c.id == found.invite.id, invites.c.status == "pending")
        .values(status="declined", declined_at=clock.now())
    )
    if claimed.rowcount != 1:
        raise Gone("This invite has already been used.", code="invite_used")
    invite = found.invite
    await tell(conn, changes.invite_declined(
        WorkspaceRef(invite.workspace_id, found.workspace_slug),
        changes.invite(invite.id, invite.email, invite.role, "declined", invite.expires_at),
        Actor.user(user.id, user.email) if user else ANONYMOUS))


# Invitations for you: the pending invites addressed to a signed-in user's verified address,
# answered without their link (the address is proven; the link is not needed).


@dataclass(frozen=True)
class ForYou:
    """A pending invite addressed to the signed-in user, as their home page lists it."""

    id: uuid.UUID
    workspace_name: str
    workspace_slug: str
    role: str
    inviter_name: str | None
    expires_at: datetime
    inviter_email: str | None = None

    @property
    def inviter(self) -> str | None:
        """The inviter as the invitee reads it (`inviter_label`)."""
        return inviter_label(self.inviter_name, self.inviter_email)


def _require_verified(user: UserInfo) -> None:
    if not user.verified:
        raise Forbidden(f"Confirm your address first: use the link we mailed to {user.email} "
                        "(or ask for a new one). Until then invitations are only opened "
                        "through their own links.", code="email_unverified")


async def invites_for(conn: AsyncConnection, *, user: UserInfo) -> list[ForYou]:
    """Pending, unexpired invites to the user's verified address, in workspaces they are not
    in yet, soonest to expire first. 403 `email_unverified` for an unverified address."""
    _require_verified(user)
    now = clock.now()
    already = select(members.c.workspace_id).where(members.c.user_id == user.id)
    inviter = users.alias("inviter")
    found = await conn.execute(
        select(invites.c.id, workspaces.c.name, workspaces.c.slug, invites.c.role,
               inviter.c.name.label("inviter_name"), invites.c.expires_at,
               inviter.c.email.label("inviter_email"))
        .join(workspaces, workspaces.c.id == invites.c.workspace_id)
        .outerjoin(inviter, inviter.c.id == invites.c.created_by_user_id)
        .where(invites.c.email == user.email,
               statuses.where("pending", invites.c.status, invites.c.expires_at, now),
               invites.c.workspace_id.not_in(already))
        .order_by(invites.c.expires_at, invites.c.id))
    return [ForYou(r.id, r.name, r.slug, r.role, r.inviter_name, clock.aware(r.expires_at),
                   r.inviter_email) for r in found]


async def _for_user(conn: AsyncConnection, invite_id: uuid.UUID, user: UserInfo, *,
                    lock: bool = False) -> _ByToken:
    """An invite addressed to the user; 404 alike for unknown and someone else's."""
    query = _FOR_USER.with_for_update(of=invites) if lock and conn.dialect.name == "postgresql" \
        else _FOR_USER
    row = (await conn.execute(query, {"invite_id": invite_id, "user_email": user.email})).first()
    if row is None:
        raise NotFound("No invitation for you with that id.", code="invite_not_found")
    return _ByToken(_info(row, clock.now()), row.workspace_name, row.workspace_slug)


async def accept_for_user(conn: AsyncConnection, *, invite_id: uuid.UUID,
                          user: UserInfo) -> Joined:
    """Accept an invite to the user's verified address without its link (home page)."""
    _require_verified(user)
    now = clock.now()
    claimed = (await conn.execute(
        _CLAIM_BY_ID, {"invite_id": invite_id, "now": now, "user_email": user.email})).first()
    if claimed is None:
        found = await _for_user(conn, invite_id, user)
        _check_usable(found)
        raise Gone(f"This invite to {found.workspace_name} has already been used.",
                   code="invite_used")
    return await _join_claimed(conn, claimed, user, now)


async def decline_for_user(conn: AsyncConnection, *, invite_id: uuid.UUID,
                           user: UserInfo) -> ForYou:
    """Decline an invite to the user's verified address without its link; returns it."""
    _require_verified(user)
    found = await _for_user(conn, invite_id, user, lock=True)
    _check_usable(found)
    await _decline(conn, found, user)
    invite = found.invite
    return ForYou(invite.id, found.workspace_name, found.workspace_slug, invite.role,
                  invite.created_by_name, invite.expires_at, invite.created_by_email)


async def tell_expired(conn: AsyncConnection, *, limit: int = 500) -> int:
    """Tell `invite.expired` for pending invites found past their expiry and not yet told
    (the housekeeping sweep); returns how many. Instances sweeping at once skip each other's
    rows (SKIP LOCKED); a resend clears the mark along with the old expiry."""
    now = clock.now()
    due = (select(invites.c.id, invites.c.workspace_id, invites.c.email, invites.c.role,
                  invites.c.expires_at, workspaces.c.slug)
           .join(workspaces, workspaces.c.id == invites.c.workspace_id)
           .where(invites.c.status == "pending", invites.c.expires_at <= now,
                  invites.c.expiry_told_at.is_(None))
           .order_by(invites.c.expires_at).limit(limit))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(of=invites, skip_locked=True)
    due_rows = (await conn.execute(due)).all()
    if not due_rows:
        return 0
    await conn.execute(update(invites).where(invites.c.id.in_([r.id for r in due_rows]))
                       .values(expiry_told_at=now))
    await tell(conn, *(changes.invite_expired(
        WorkspaceRef(r.workspace_id, r.slug),
        changes.invite(r.id, r.email, r.role, "expired", clock.aware(r.expires_at)), SYSTEM)
        for r in due_rows))
    return len(due_rows)
