"""The profile: what signed-in people change about their own account.

Name; password (the current one asked, counted against the sign-in failure limits; every other
session and API token signed out); email address (a link to the new address, effective when
opened, a notice to the old one); their sessions and API tokens (listed, signed out one by
one). Each change goes to the account's security trail (`events`).

Typing the current password is a guess like a sign-in: it is counted as a failure before the
hash is checked and taken back when right, in the same counters as sign-in, so neither form
adds guesses to the other. Hashes are checked and made with no transaction open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.accounts import links
from workspaces.accounts.recovery import RESET
from workspaces.accounts.service import (
    UserInfo,
    address_refusal,
    check_password,
    failed_password_limits,
    get_user_by_email,
)
from workspaces.db import Transactions
from workspaces.errors import (
    AppError,
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from workspaces.events import changes
from workspaces.events.tell import Actor, tell
from workspaces.mail.outbox import enqueue_account_email
from workspaces.models import ACCOUNT_TOKEN_PURPOSES, auth_tokens, users
from workspaces.oauth.grants import end_user_grants
from workspaces.security import Passwords, hash_token, secret_key
from workspaces.settings import Settings
from workspaces.validation import clean_name, email_skeleton, normalize_email, together

EMAIL_CHANGE = "change_email"
EMAIL_CHANGE_TTL = timedelta(hours=24)
EMAIL_CHANGE_PATH = "email"  # the page at BASE_URL/email/<token>
WHEN = "%d %B %Y at %H:%M UTC"


async def change_name(conn: AsyncConnection, *, user: UserInfo, name: str) -> UserInfo:
    """Set the account's display name (422 `invalid_name`)."""
    cleaned = clean_name(name, field="name")
    if cleaned != user.name:
        await conn.execute(update(users).where(users.c.id == user.id)
                           .values(name=cleaned, updated_at=clock.now()))
        await tell(conn, changes.user_renamed(changes.user(user.id, user.email, cleaned),
                                              user.name, Actor.user(user.id, user.email)))
    return replace(user, name=cleaned)


def _wrong_password() -> Forbidden:
    return Forbidden("The current password is wrong.", code="wrong_password",
                     field="current_password")


@dataclass(frozen=True)
class _Checked:
    """A current password found right: the hash it matched, and the limits it was counted
    against (taken back by `_settle` in the transaction that acts on it)."""

    stored: str
    limits: tuple[ratelimit.Limit, ...]


async def _check_current(tx: Transactions, passwords: Passwords, *, user: UserInfo,
                         password: str, client: str, settings: Settings) -> _Checked:
    """403 `wrong_password` unless `password` is the account's; counted like a sign-in."""
    limits = failed_password_limits(user.email, client, settings)
    async with tx.write() as conn:
        await ratelimit.hit(conn, *limits)
        stored = (await conn.execute(
            select(users.c.password_hash).where(users.c.id == user.id))).scalar()
    try:
        valid = await passwords.verify(stored, password)
    except ServiceUnavailable:  # no turn to check it (503): the attempt was not one
        async with tx.write() as conn:
            await ratelimit.undo(conn, *limits)
        raise
    if stored is None or not valid:
        raise _wrong_password()
    return _Checked(stored, limits)


async def _check_current_too(tx: Transactions, passwords: Passwords, *, user: UserInfo,
                             password: str, client: str, settings: Settings,
                             refused: AppError | None) -> _Checked:
    """`_check_current`, also when another field of the form was `refused` already, so the
    form tells every problem at once; a right password is then settled before refusing."""
    try:
        checked = await _check_current(tx, passwords, user=user, password=password,
                                       client=client, settings=settings)
    except Forbidden as wrong:
        raise wrong if refused is None else together(refused, wrong) from None
    if refused is not None:
        async with tx.write() as conn:
            await _settle(conn, checked)
        raise refused
    return checked


async def _settle(conn: AsyncConnection, checked: _Checked) -> None:
    """Take the right password's count back, and forget this client's failures for the
    account (as a successful sign-in does; same rows, same order)."""
    await ratelimit.undo(conn, *checked.limits)
    await ratelimit.clear(conn, checked.limits[1].key)


async def _live_token_id(conn: AsyncConnection, *, user_id: uuid.UUID,
                         token: str) -> uuid.UUID:
    """The id of the caller's own session or token; 401 `invalid_token` if it was signed out
    (or expired) since the request began."""
    found = (await conn.execute(
        select(auth_tokens.c.id)
        .where(auth_tokens.c.token_hash == hash_token(token), auth_tokens.c.user_id == user_id,
               auth_tokens.c.revoked_at.is_(None), auth_tokens.c.expires_at > clock.now())
    )).scalar()
    if found is None:
        raise NotAuthenticated("This session was signed out meanwhile; sign in again.",
                               code="invalid_token")
    return uuid.UUID(str(found))


def _check_new_password(password: str) -> None:
    try:
        check_password(password)
    except InvalidInput as error:
        raise InvalidInput(error.message, code=error.code, field="new_password") from None


async def change_password(tx: Transactions, passwords: Passwords, *, user: UserInfo,
                          token: str, current_password: str, new_password: str, client: str,
                          settings: Settings) -> int:
    """Set a new password, the current one given; returns how many other sessions and API
    tokens were signed out.

    The new password is hashed with no transaction open. Then, in one transaction: the stored
    hash is read again under a row lock and must be the one the current password matched (a
    reset or another change that committed meanwhile wins: 403 `wrong_password`), the hash
    set, every other session and token of the account revoked (the caller's own stays) and
    every app's grant ended (`oauth.grants`), the event recorded and the notice queued. A
    sign-in with the old password that races this share-locks the same row
    (`service.sign_in`): it either finishes first, and its session is revoked here, or it sees
    the new hash and is refused.
    """
    refused = None
    try:
        _check_new_password(new_password)
    except InvalidInput as error:
        refused = error
    checked = await _check_current_too(tx, passwords, user=user, password=current_password,
                                       client=client, settings=settings, refused=refused)
    new_hash = await passwords.hash(new_password)
    now = clock.now()
    async with tx.write() as conn:
        await _settle(conn, checked)
        stored = select(users.c.password_hash, users.c.email_verified_at) \
            .where(users.c.id == user.id)
        if conn.dialect.name == "postgresql":
            stored = stored.with_for_update()
        current = (await conn.execute(stored)).one()
        if current.password_hash != checked.stored:
            raise _wrong_password()
        kept = await _live_token_id(conn, user_id=user.id, token=token)
        await conn.execute(update(users).where(users.c.id == user.id)
                           .values(password_hash=new_hash, updated_at=now))
        revoked = len((await conn.execute(
            update(auth_tokens)
            .where(auth_tokens.c.user_id == user.id, auth_tokens.c.id != kept,
                   auth_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(auth_tokens.c.id))).all())
        # Every app's grant ends too (their refresh tokens), those signed in from the kept
        # session included: whoever knew the old password may have connected one.
        await end_user_grants(conn, user_id=user.id)
        for purpose in ACCOUNT_TOKEN_PURPOSES:  # links asked for with the old password end too
            # but a reset link mailed to an unverified address: it is how the mailbox's owner
            # takes the account back from whoever registered the address (`recovery`).
            if purpose != RESET or current.email_verified_at is not None:
                await links.end_links(conn, user.id, purpose)
        await tell(conn, changes.account_only(user.id, "password_changed",
                                              Actor.user(user.id, user.email),
                                              {"signed_out": revoked}))
        await enqueue_account_email(
            conn, to=user.email, subject="Your Workspaces password was changed",
            template="password_changed",
            values={"email": user.email, "when": now.strftime(WHEN), "kept": "yes"},
            key=secret_key(settings))
    return revoked


def _email_change_limits(user_id: uuid.UUID, address: str, settings: Settings, *,
                         new_link: bool) -> tuple[ratelimit.Limit, ...]:
    """Per account an hour; per receiving mailbox from this account a day (`+tags` and dots
    merged, as for invites); and per mailbox from all accounts a day, a higher ceiling that
    counts an account's requests for one address once while its link is live. So accounts made
    for it cannot flood an address, nor spend its budget for the account that means it."""
    day, mailbox = timedelta(days=1), ratelimit.mailbox_key(address)
    limits = (
        ratelimit.Limit(f"email-change:account:{user_id}",
                        settings.email_change_limit_per_account_per_hour,
                        timedelta(hours=1), "address change requests",
                        name="email_change_limit_per_account_per_hour"),
        ratelimit.Limit(f"email-change:to:{mailbox}:by:{user_id}",
                        settings.email_change_limit_per_recipient_per_day,
                        day, "address change emails from you to this address",
                        name="email_change_limit_per_recipient_per_day"),
    )
    if not new_link:
        return limits
    return (*limits, ratelimit.Limit(
        f"email-change:to:{mailbox}",
        settings.email_change_limit_per_recipient_all_accounts_per_day, day,
        "address change emails to this address",
        name="email_change_limit_per_recipient_all_accounts_per_day"))


async def request_email_change(tx: Transactions, passwords: Passwords, *, user: UserInfo,
                               email: str, current_password: str, client: str,
                               settings: Settings) -> str:
    """Mail a link to the new address (valid 24 hours; a newer one ends the older); returns
    the address. The current password comes first (checked also when the address is no address
    or the account's own, to tell both at once), then the request is counted (refused ones
    too: each answers whether an address has an account, like a sign-up attempt), and only
    then is it said whether the address is taken or looks like one that is (409
    `email_taken`, 422 `email_confusable`)."""
    address, refused = "", None
    try:
        address = normalize_email(email)
        if address == user.email:
            raise InvalidInput("That is your address already.", code="email_unchanged",
                               field="email")
    except InvalidInput as error:
        refused = error
    checked = await _check_current_too(tx, passwords, user=user, password=current_password,
                                       client=client, settings=settings, refused=refused)
    refusal: AppError | None
    async with tx.write() as conn:
        await _settle(conn, checked)
        try:
            async with conn.begin_nested():
                pending = await links.newest_live_link(conn, user.id, EMAIL_CHANGE, address)
                await ratelimit.hit(conn, *_email_change_limits(user.id, address, settings,
                                                                new_link=pending is None))
        except RateLimited as limited:
            refusal = limited
        else:
            refusal = await address_refusal(conn, address)
        if refusal is None:
            token = await links.issue_link(conn, user_id=user.id, purpose=EMAIL_CHANGE,
                                           email=address, ttl=EMAIL_CHANGE_TTL,
                                           key=secret_key(settings))
            await tell(conn, changes.account_only(user.id, "email_change_requested",
                                                  Actor.user(user.id, user.email),
                                                  {"to": address}))
            await enqueue_account_email(
                conn, to=address, subject="Confirm your new Workspaces address",
                template="email_change", values={"email": user.email, "new": address},
                key=secret_key(settings), link_path=f"{EMAIL_CHANGE_PATH}/{token}")
    if refusal is not None:  # raised after the block: the password's count is settled
        raise refusal
    return address


def _dead_email_link() -> Gone:
    return Gone("This address change link has expired, was used, or was replaced by a newer "
                "one. Ask for a new link from your account page.", code="email_link_invalid")


@dataclass(frozen=True)
class EmailChange:
    """A live address-change link: whose account, from which address to which."""

    user_id: uuid.UUID
    old: str
    new: str


async def check_email_link(conn: AsyncConnection, token: str) -> EmailChange:
    """The change a live link stands for; 410 `email_link_invalid` else."""
    row = await links.live_link(conn, token, EMAIL_CHANGE)
    if row is None:
        raise _dead_email_link()
    old = (await conn.execute(select(users.c.email).where(users.c.id == row.user_id))).scalar()
    return EmailChange(row.user_id, str(old), str(row.email))


@dataclass(frozen=True)
class PendingChange:
    """An address change asked for and not confirmed yet: to which address, until when."""

    new: str
    expires_at: datetime


async def pending_email_change(conn: AsyncConnection, *,
                               user_id: uuid.UUID) -> PendingChange | None:
    """The account's address change waiting for its link to be opened, if any."""
    row = await links.newest_live_link(conn, user_id, EMAIL_CHANGE)
    return PendingChange(str(row.email), clock.aware(row.expires_at)) if row else None


async def cancel_email_change(conn: AsyncConnection, *, user: UserInfo) -> PendingChange | None:
    """End the account's pending address change links; returns the change that was pending
    (nothing to cancel is fine: None)."""
    pending = await pending_email_change(conn, user_id=user.id)
    await links.end_links(conn, user.id, EMAIL_CHANGE)
    return pending


async def confirm_email_change(conn: AsyncConnection, *, token: str, user_id: uuid.UUID | None,
                               settings: Settings) -> UserInfo:
    """Make the link's address the account's, verified: used signed in as the account
    (`links.check_holder`: the password holder reads the new mailbox).

    The link is claimed first (of two racing confirms one wins, the other gets 410), then the
    address checked free again (409 `email_taken`, 422 `email_confusable`; the users' unique
    address and skeleton decide a race with a sign-up). Every other open link of the account
    ends: they were mailed to the old address. A notice goes to the old address.
    """
    now = clock.now()
    live = await links.live_link(conn, token, EMAIL_CHANGE)
    if live is None:
        raise _dead_email_link()
    # The account's row is locked before its link is claimed, the order a password reset
    # takes them too (row, then links): the two never wait for each other in a circle.
    current = select(users.c.email, users.c.name).where(users.c.id == live.user_id)
    if conn.dialect.name == "postgresql":
        current = current.with_for_update()
    old, name = (await conn.execute(current)).one()
    links.check_holder(live.user_id, user_id, old)
    claimed = await links.claim_link(conn, token, EMAIL_CHANGE)
    if claimed is None:
        raise _dead_email_link()
    new = str(claimed.email)
    refusal = await address_refusal(conn, new)
    if refusal is not None:
        raise refusal
    try:
        async with conn.begin_nested():
            await conn.execute(update(users).where(users.c.id == claimed.user_id).values(
                email=new, email_skeleton=email_skeleton(new), email_verified_at=now,
                updated_at=now))
    except IntegrityError:
        raise await address_refusal(conn, new) or Conflict(
            f"An account for {new} exists already.", code="email_taken",
            field="email") from None
    for purpose in ACCOUNT_TOKEN_PURPOSES:  # mailed to the old address: it proves nothing now
        await links.end_links(conn, claimed.user_id, purpose)
    await tell(conn, changes.email_changed(changes.user(claimed.user_id, new, name), old,
                                           Actor.user(claimed.user_id, old)))
    await enqueue_account_email(
        conn, to=old, subject="The address of your Workspaces account was changed",
        template="email_changed", values={"old": old, "new": new, "when": now.strftime(WHEN)},
        key=secret_key(settings))
    changed = await get_user_by_email(conn, new)
    assert changed is not None  # noqa: S101 (set just above, in this transaction)
    return changed


@dataclass(frozen=True)
class SessionInfo:
    """A live session (browser) or API token of the account; never the token itself."""

    id: uuid.UUID
    kind: str
    created_at: datetime
    expires_at: datetime
    current: bool  # the one this request was made with
    device: str  # in words, from the User-Agent header it was issued to (`device_of`)
    address: str | None  # the client address it was issued to; None: issued before we kept it
    last_used_at: datetime  # to within `service.LAST_USE_STEP`


UNKNOWN_DEVICE = "Unknown device"
_RAW_AGENT_SHOWN = 80  # an agent the parser does not know is shown as sent, this long at most


def device_of(user_agent: str | None) -> str:
    """A User-Agent header in words: the browser and the system it runs on ("Firefox 133 on
    Windows 10", "Mobile Safari 17 on iPhone (iOS 17)"), by ua-parser's reference rules; an
    agent it does not know (a script's) as sent."""
    if not user_agent or not user_agent.strip():
        return UNKNOWN_DEVICE
    import ua_parser  # here: only the sessions list needs it, and a worker may never show one

    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent
    if browser is None:
        raw = " ".join(user_agent.split())
        return raw if len(raw) <= _RAW_AGENT_SHOWN else raw[:_RAW_AGENT_SHOWN - 1] + "…"
    words = " ".join(filter(None, (browser.family, browser.major)))
    system = " ".join(filter(None, (parsed.os.family, parsed.os.major))) if parsed.os else ""
    hardware = parsed.device.family if parsed.device else ""
    if hardware and system and hardware not in system:
        return f"{words} on {hardware} ({system})"
    return f"{words} on {system or hardware}" if system or hardware else words


async def list_sessions(conn: AsyncConnection, *, user_id: uuid.UUID,
                        token: str | None) -> list[SessionInfo]:
    """The account's live sessions and API tokens, the caller's (`token`) first, then the
    newest first."""
    current = auth_tokens.c.token_hash == (hash_token(token) if token else "")
    rows = await conn.execute(
        select(auth_tokens.c.id, auth_tokens.c.kind, auth_tokens.c.created_at,
               auth_tokens.c.expires_at, current.label("current"), auth_tokens.c.user_agent,
               auth_tokens.c.client_address, auth_tokens.c.last_used_at)
        .where(auth_tokens.c.user_id == user_id, auth_tokens.c.revoked_at.is_(None),
               auth_tokens.c.expires_at > clock.now())
        .order_by(current.desc(), auth_tokens.c.created_at.desc(), auth_tokens.c.id))
    return [SessionInfo(r.id, r.kind, clock.aware(r.created_at), clock.aware(r.expires_at),
                        bool(r.current), device_of(r.user_agent), r.client_address,
                        clock.aware(r.last_used_at or r.created_at)) for r in rows]


async def revoke_session(conn: AsyncConnection, *, user_id: uuid.UUID,
                         session_id: uuid.UUID) -> str:
    """Sign out one live session or API token of the account, and end the apps' grants made
    in that session (their refresh tokens); returns its kind. 404
    `session_not_found` for one that is not the account's, is over, or does not exist."""
    now = clock.now()
    kind = (await conn.execute(
        update(auth_tokens)
        .where(auth_tokens.c.id == session_id, auth_tokens.c.user_id == user_id,
               auth_tokens.c.revoked_at.is_(None), auth_tokens.c.expires_at > now)
        .values(revoked_at=now)
        .returning(auth_tokens.c.kind))).scalar()
    if kind is None:
        raise NotFound("No such session: it was signed out already, or expired.",
                       code="session_not_found")
    await end_user_grants(conn, user_id=user_id, session_id=session_id)  # apps it signed in
    await tell(conn, changes.account_only(user_id, "session_revoked", Actor("user", user_id),
                                          {"kind": str(kind)}))
    return str(kind)

