"""Accounts: sign up, sign in, bearer tokens and browser sessions (stored only as hashes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.accounts.verification import send_verification
from workspaces.db import Transactions
from workspaces.errors import (
    AppError,
    Conflict,
    InvalidInput,
    NotAuthenticated,
    ServiceUnavailable,
)
from workspaces.events import changes
from workspaces.events.tell import Actor, tell
from workspaces.members import store
from workspaces.models import USER_AGENT_MAX, auth_tokens, members, users, workspaces
from workspaces.security import Passwords, hash_token, new_token
from workspaces.settings import Settings
from workspaces.validation import check_all, clean_name, email_skeleton, normalize_email

MIN_PASSWORD, MAX_PASSWORD = 8, 1024
# The rule check_password applies, as its refusal and every password form's hint say it.
PASSWORD_RULE = f"{MIN_PASSWORD} to {MAX_PASSWORD} characters"
TOKEN_PREFIX = "wst_"  # noqa: S105 (a marker that makes leaked tokens easy to scan for)


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime
    email_verified_at: datetime | None = None  # None: the address is not proven yet

    @property
    def verified(self) -> bool:
        return self.email_verified_at is not None


USER_COLUMNS = (users.c.id, users.c.email, users.c.name, users.c.created_at,
                 users.c.email_verified_at)


def user_of(row: Any) -> UserInfo:
    """The UserInfo in a row that selected the user columns (e.g. `token_user_query`)."""
    verified = row.email_verified_at
    return UserInfo(row.id, row.email, row.name, clock.aware(row.created_at),
                    clock.aware(verified) if verified is not None else None)


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"Choose a password of {PASSWORD_RULE}.",
                           code="invalid_password", field="password")


@dataclass(frozen=True)
class NewAccount:
    """A sign-up's input, checked, with the password already hashed (before any transaction)."""

    email: str
    name: str
    password_hash: str


@dataclass(frozen=True)
class Session:
    """The token a sign-up or sign-in issues: an API token or a browser session, and the device
    it goes to (its User-Agent header and client address: the session list shows them)."""

    kind: str
    ttl: timedelta
    user_agent: str | None
    address: str


def _email_taken(address: str) -> Conflict:
    return Conflict(f"An account for {address} exists already; sign in instead (or, if it is "
                    "your address and you did not make that account, reset its password: the "
                    "link goes to your mailbox).",
                    code="email_taken", field="email")


def _email_confusable(address: str) -> InvalidInput:
    return InvalidInput(f"{address} looks like the address of an existing account (look-alike "
                        "letters). If that account is yours, sign in with its address; "
                        "otherwise type your address again.", code="email_confusable",
                        field="email")


async def address_refusal(conn: AsyncConnection, address: str) -> AppError | None:
    """Why `address` cannot have a new account: taken, or a look-alike of one; else None."""
    row = (await conn.execute(
        select(users.c.email).where(or_(users.c.email == address,
                                        users.c.email_skeleton == email_skeleton(address)))
        .limit(1)
    )).first()
    if row is None:
        return None
    return _email_taken(address) if row.email == address else _email_confusable(address)


async def create_account(conn: AsyncConnection, *, account: NewAccount,
                         verified: bool = False, actor: Actor | None = None) -> UserInfo:
    """Insert the account; 409 `email_taken` when the address has one already, 422
    `email_confusable` when it looks like another account's (the unique skeleton decides,
    also between two racing sign-ups). `verified`: the address was proven on the way (an
    invite's emailed link). Told as `user.created` by `actor` (default: the new user)."""
    now = clock.now()
    user_id = uuid.uuid4()
    try:
        async with conn.begin_nested():
            await conn.execute(insert(users).values(
                id=user_id, email=account.email, name=account.name,
                password_hash=account.password_hash, created_at=now, updated_at=now,
                email_skeleton=email_skeleton(account.email),
                email_verified_at=now if verified else None,
            ))
    except IntegrityError:
        raise await address_refusal(conn, account.email) or _email_taken(account.email) from None
    await tell(conn, changes.user_created(
        changes.user(user_id, account.email, account.name), verified=verified,
        actor=actor or Actor.user(user_id, account.email)))
    return UserInfo(user_id, account.email, account.name, now, now if verified else None)


def sign_up_limit(client: str, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"signup:client:{ratelimit.client_key(client)}",
                           settings.signup_limit_per_client_per_hour, timedelta(hours=1),
                           "sign-ups from your network",
                           name="signup_limit_per_client_per_hour")


async def sign_up(tx: Transactions, passwords: Passwords, *, email: str, password: str,
                  name: str, client: str, settings: Settings, session: Session
                  ) -> tuple[UserInfo, str]:
    """Create an account (and a token for it): input checked, the attempt counted per client
    address and committed (refused ones too: they answer whether an address has an account),
    the password hashed with no transaction open, then the account written."""
    address, display_name, _ = check_all(lambda: normalize_email(email),
                                         lambda: clean_name(name, field="name"),
                                         lambda: check_password(password))
    async with tx.write() as conn:
        await ratelimit.hit(conn, sign_up_limit(client, settings))
        refusal = await address_refusal(conn, address)
    if refusal:  # raised after the block: the counted attempt commits
        raise refusal
    account = NewAccount(address, display_name, await passwords.hash(password))
    async with tx.write() as conn:
        user = await create_account(conn, account=account)
        await send_verification(conn, user_id=user.id, email=user.email, settings=settings)
        token = await issue_token(conn, user_id=user.id, session=session)
    return user, token


SIGNIN_WINDOW = timedelta(minutes=15)


def _sign_in_limits(address: str | None, client: str, settings: Settings
                    ) -> tuple[ratelimit.Limit, ...]:
    """Failed sign-ins from this client over all accounts; and, for a well-formed address, for
    the account from this client and for the account from anywhere (distributed guessing, a
    higher ceiling). Malformed addresses share no account key (typos are not one account)."""
    source = ratelimit.client_key(client)
    what = "failed sign-ins"
    per_client = ratelimit.Limit(f"signin:fail-client:{source}",
                                 settings.signin_limit_per_address, SIGNIN_WINDOW, what,
                                 name="signin_limit_per_address")
    if address is None:
        return (per_client,)
    account = ratelimit.hashed(address)
    return (
        per_client,
        ratelimit.Limit(f"signin:fail:{account}:{source}", settings.signin_limit_per_account,
                        SIGNIN_WINDOW, what, name="signin_limit_per_account"),
        ratelimit.Limit(f"signin:fail:{account}", settings.signin_limit_per_account_all_clients,
                        SIGNIN_WINDOW, what, name="signin_limit_per_account_all_clients"),
    )


async def sign_in(tx: Transactions, passwords: Passwords, *, email: str, password: str,
                  client: str, settings: Settings, session: Session) -> tuple[UserInfo, str]:
    """Check the password and issue a token.

    Only failures count, per account and client address (so a stranger's guesses from
    elsewhere do not lock the real user out), per account from all addresses (a higher
    ceiling), and per client address. Each attempt is counted as a failure before its password
    is checked, and taken back when it turns out right: guesses sent all at once cannot pass
    the limit, and one over it gets 429 without costing a hash. A success also clears its
    address's failures for the account. The hash is checked with no connection held.
    """
    try:
        address: str | None = normalize_email(email)
    except InvalidInput:
        address = None
    limits = _sign_in_limits(address, client, settings)
    async with tx.write() as conn:
        await ratelimit.hit(conn, *limits)
        row = (await conn.execute(
            select(*USER_COLUMNS, users.c.password_hash).where(users.c.email == address)
        )).first() if address is not None else None
    try:
        valid = await passwords.verify(row.password_hash if row else None, password)
    except ServiceUnavailable:  # no turn to check it (503): the attempt was not one
        async with tx.write() as conn:
            await ratelimit.undo(conn, *limits)
        raise
    if row is None or not valid:
        raise NotAuthenticated("The email or password is wrong.", code="invalid_credentials")
    async with tx.write() as conn:
        # Taken back in the key order `hit` uses (undo sorts), then this address's failures
        # for the account forgotten: the same rows in the same order, so no deadlock.
        await ratelimit.undo(conn, *limits)
        if len(limits) > 1:
            await ratelimit.clear(conn, limits[1].key)
        # A password reset that committed since the check revoked every session: no session
        # for the old password may follow it. The row is share-locked until this commits, so a
        # reset waits for this session to exist and then revokes it too.
        current = select(users.c.password_hash).where(users.c.id == row.id)
        if conn.dialect.name == "postgresql":
            current = current.with_for_update(read=True)
        if (await conn.execute(current)).scalar() != row.password_hash:
            raise NotAuthenticated("The email or password is wrong.",
                                   code="invalid_credentials")
        token = await issue_token(conn, user_id=row.id, session=session)
    return user_of(row), token


async def delete_account(conn: AsyncConnection, *, user: UserInfo) -> None:
    """Delete the account, unless it is the only owner of a workspace (hand it over first).

    Deleting the account removes its memberships, so it takes the lock every membership change
    takes (`workspaces.service.lock_for_change`: the workspace row, FOR NO KEY UPDATE) on each
    of its workspaces before counting their owners: two co-owners deleting their accounts at
    once, or one deleting while the other leaves, run one after the other and the second is
    refused. The locks are taken in one statement in workspace id order, so two people who
    co-own several workspaces cannot deadlock. (SQLite's BEGIN IMMEDIATE serialises anyway.)
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(workspaces.c.id)
            .where(workspaces.c.id.in_(
                select(members.c.workspace_id).where(members.c.user_id == user.id)))
            .order_by(workspaces.c.id)
            .with_for_update(key_share=True)
        )
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
    actor = Actor.user(user.id, user.email)
    await store.remove_account(conn, user_id=user.id, actor=actor)
    await conn.execute(delete(users).where(users.c.id == user.id))
    await tell(conn, changes.user_deleted(changes.user(user.id, user.email, user.name), actor))


async def get_user_by_email(conn: AsyncConnection, email: str) -> UserInfo | None:
    row = (await conn.execute(select(*USER_COLUMNS).where(users.c.email == email))).first()
    return user_of(row) if row else None


async def issue_token(conn: AsyncConnection, *, user_id: uuid.UUID, session: Session) -> str:
    """A new bearer token or session for the user; only its hash is stored."""
    token = new_token(TOKEN_PREFIX)
    now = clock.now()
    await conn.execute(insert(auth_tokens).values(
        id=uuid.uuid4(), user_id=user_id, token_hash=hash_token(token), kind=session.kind,
        created_at=now, expires_at=now + session.ttl, last_used_at=now,
        user_agent=session.user_agent[:USER_AGENT_MAX] if session.user_agent else None,
        client_address=session.address,
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
    select(*USER_COLUMNS, auth_tokens.c.id.label("token_id"),
           auth_tokens.c.created_at.label("token_created_at"), auth_tokens.c.last_used_at)
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


@dataclass(frozen=True)
class LiveSession:
    """A live token and its user: its id (OpenID Connect's `sid` for a browser session) and
    when it was issued (the sign-in's time, `auth_time`)."""

    user: UserInfo
    id: uuid.UUID
    created_at: datetime


async def session_for_token(conn: AsyncConnection, *, token: str, kind: str
                            ) -> LiveSession | None:
    """The live (unexpired, unrevoked) token `token`, in one query (its use noted: `note_use`)."""
    row = (await conn.execute(TOKEN_USER, token_params(token, kind))).first()
    if row is None:
        return None
    await note_use(conn, row)
    return LiveSession(user_of(row), row.token_id, clock.aware(row.token_created_at))


async def user_for_token(conn: AsyncConnection, *, token: str, kind: str) -> UserInfo | None:
    """The user a live token belongs to (`session_for_token`)."""
    session = await session_for_token(conn, token=token, kind=kind)
    return session.user if session else None


# "Last used" is kept to this step: a busy session costs one UPDATE in a while, not one a request.
LAST_USE_STEP = timedelta(minutes=5)


async def note_use(conn: AsyncConnection, row: Any) -> None:
    """Move the last use of the token of a `TOKEN_USER` row to now, when it is a step old."""
    now = clock.now()
    if clock.aware(row.last_used_at or row.token_created_at) > now - LAST_USE_STEP:
        return
    # Noted by reads only, whose statements commit at once (AUTOCOMMIT) and keep no lock: in a
    # write transaction the token row would stay locked to its end, where a password change
    # (the user's row, then every token row) could meet it in a circle.
    sync = conn.sync_connection
    if sync is None or sync.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        return
    # A row another transaction holds (its sign-out, a password change ending it) is skipped,
    # not waited for: a note of use never makes a request wait, nor two deadlock.
    free = (select(auth_tokens.c.id).where(auth_tokens.c.id == row.token_id)
            .with_for_update(skip_locked=True).scalar_subquery())
    await conn.execute(update(auth_tokens).where(auth_tokens.c.id == free)
                       .values(last_used_at=now))


def failed_password_limits(address: str, client: str, settings: Settings
                           ) -> tuple[ratelimit.Limit, ...]:
    """The limits a wrong password counts against wherever it is typed (sign-in, and the
    profile's forms that ask for the current password): one budget of guesses, not one each."""
    return _sign_in_limits(address, client, settings)
