"""All tables in one metadata: what the newest migration must produce (`db new` diffs it)."""

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workspaces.invites.statuses import STORED as INVITE_STATUSES
from workspaces.roles import ROLES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TOKEN_KINDS = ("api", "browser")
# One-time links mailed to an address: only the sha256 of the token is stored.
ACCOUNT_TOKEN_PURPOSES = ("password_reset", "verify_email", "change_email")
USER_AGENT_MAX = 512  # longer User-Agent headers are stored cut to this
OUTBOX_STATUSES = ("pending", "sent", "logged", "failed")  # logged: EMAIL_BACKEND=console
PENDING_ONLY = text("status = 'pending'")
DELIVERY_STATUSES = ("pending", "delivered", "failed")  # failed: the schedule ran out
# A feed position: BIGINT on PostgreSQL; SQLite numbers rows only through INTEGER PRIMARY KEY.
POSITION = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored normalised to lower case, so the unique constraint is case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        # No account's address may look like another's (Unicode TS #39 skeleton); NULL for
        # look-alikes registered before the rule (see the migration that added it).
        Index("uq_users_email_skeleton", "email_skeleton", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    email_skeleton: Mapped[str | None] = mapped_column(String(320))
    # When the address was proven to reach this person (a link mailed to it was used); NULL:
    # unverified (accounts made before verification existed stay so until they verify).
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkspaceMember(Base):
    __tablename__ = "workspace_members"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkspaceInvite(Base):
    __tablename__ = "workspace_invites"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint(_in("status", INVITE_STATUSES), name="status"),
        Index("ix_workspace_invites_workspace_id_email", "workspace_id", "email"),
        Index("ix_workspace_invites_workspace_id_status", "workspace_id", "status"),
        # At most one pending invite per workspace and address, also when two requests race.
        Index("uq_workspace_invites_pending_email", "workspace_id", "email", unique=True,
              postgresql_where=PENDING_ONLY, sqlite_where=PENDING_ONLY),
        # Newest-first keyset pagination.
        Index("ix_workspace_invites_workspace_id_created_at", "workspace_id", "created_at",
              "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    # sha256 of the invite token; the token itself is never stored.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    declined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # When the housekeeping sweep found it past `expires_at` and told `invite.expired`; a
    # resend (new expiry) clears it.
    expiry_told_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthToken(Base):
    """API bearer tokens and browser sessions; only the sha256 of the token is stored."""

    __tablename__ = "auth_tokens"
    __table_args__ = (CheckConstraint(_in("kind", TOKEN_KINDS), name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the account page tells sessions apart by: the User-Agent header at sign-in, the
    # client address as the limits see it, and the latest use (all None: issued before they
    # were kept).
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))
    client_address: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountToken(Base):
    """A one-time link mailed to an account's address (password reset): used once, expires,
    and a newer one of the same purpose ends the older ones."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(_in("purpose", ACCOUNT_TOKEN_PURPOSES), name="purpose"),
        Index("ix_account_tokens_user_id_purpose", "user_id", "purpose"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))  # the address the link was sent to
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountEvent(Base):
    """An account's own security trail (password changed or reset, address verified or
    changed, sessions signed out), shown to its owner; no secrets in it."""

    __tablename__ = "account_events"
    __table_args__ = (Index("ix_account_events_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmailOutbox(Base):
    """Emails written in the same transaction as the change that causes them, sent later."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
        Index("ix_email_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    invite_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspace_invites.id", ondelete="SET NULL"), index=True
    )
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # The invite link's token, encrypted with SECRET_KEY until sent, then erased.
    sealed_secret: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_workspace_id_created_at", "workspace_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    # The actor's address when the event was written, as target_email is the target's: later
    # addresses of someone who left are not the workspace's to see.
    actor_email: Mapped[str | None] = mapped_column(String(320))
    # A service client that acted (a product's backend), as it was named then.
    actor_client_id: Mapped[str | None] = mapped_column(String(64))
    actor_client_name: Mapped[str | None] = mapped_column(String(200))
    target_email: Mapped[str | None] = mapped_column(String(320))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """The event log: every change told (`events.tell`), written in the change's transaction.

    `position` numbers events as they are written, `txid` is the writing transaction
    (PostgreSQL's xid8; 0 on SQLite, where writers take turns). The feed orders by both and
    shows only events of transactions older than any still running, so a consumer's cursor
    never passes an event that commits later (see events/feed.py).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_txid_position", "txid", "position"),
        Index("ix_events_workspace_id_txid_position", "workspace_id", "txid", "position"),
        Index("ix_events_occurred_at", "occurred_at"),
        {"sqlite_autoincrement": True},  # positions are never reused, even after a sweep
    )

    position: Mapped[int] = mapped_column(POSITION, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(BigInteger)
    id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_...: the dedupe key
    type: Mapped[str] = mapped_column(String(64))
    # No foreign key: a workspace's events outlive it (workspace.deleted is one of them).
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the event as the feed serves it


class EventHorizon(Base):
    """How far the retention sweep has deleted the feed (one row): a cursor before it may have
    missed events, and is refused rather than silently skipping them."""

    __tablename__ = "event_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    txid: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(BigInteger)
    swept_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookEndpoint(Base):
    """Where events are delivered: of one workspace, or of the instance (workspace_id NULL)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500))
    # The types delivered, as ",member.added,invite.created," (NULL: every type).
    event_types: Mapped[str | None] = mapped_column(Text)
    # The signing secret (whsec_...) sealed with SECRET_KEY; after a rotation the previous one
    # keeps signing beside it until previous_secret_until.
    sealed_secret: Mapped[str] = mapped_column(Text)
    sealed_previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The first failed attempt since the last success (NULL: not failing).
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # WEBHOOK_ALLOWED_NETWORKS admits its receiver: an instance endpoint whose URL an operator
    # set. Any other URL (a workspace admin's, a service client's) is judged by
    # WORKSPACE_WEBHOOK_ALLOWED_NETWORKS: the operator's internal hosts are not theirs to reach.
    operator_networks: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())


class WebhookDelivery(Base):
    """One event for one endpoint: written with the event, delivered at least once."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # The event delivered; swept with it. NULL for a test message, whose body is `payload`.
    event_position: Mapped[int | None] = mapped_column(
        ForeignKey("events.position", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(String(40))  # webhook-id: the event's id
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """One try at a delivery: what the receiver answered, and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint_id_attempted_at", "endpoint_id", "attempted_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer)  # NULL: no answer
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # the answer's first bytes
    error: Mapped[str | None] = mapped_column(String(500))


class RateLimitCounter(Base):
    """Fixed-window counters shared by every server instance."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class SigningKey(Base):
    """A key that signs ID and access tokens; every instance reads the same ones.

    Published (in the JWKS) from creation; signs from `activates_at` (after relying parties'
    cached key sets have had time to pick it up) until `retired_at` (its successor's
    activation); published until every token it signed has expired.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_private_key: Mapped[str] = mapped_column(Text)  # PEM, sealed with SECRET_KEY
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activates_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthClient(Base):
    """A relying party or a product's backend, registered by the operator."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client_id
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))  # NULL: a public client
    trusted: Mapped[bool] = mapped_column(Boolean)  # first-party: no consent page
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)  # what it may ask for
    # True: its service tokens reach only the workspaces in oauth_client_workspaces.
    workspace_restricted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthClientWorkspace(Base):
    """A workspace a restricted client's service tokens may act on."""

    __tablename__ = "oauth_client_workspaces"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True, index=True)


class OAuthConsent(Base):
    """The scopes a user granted a client (asked once per user and scope set)."""

    __tablename__ = "oauth_consents"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), primary_key=True, index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OAuthGrant(Base):
    """One authorization: what a code or a client_credentials request granted. Its access
    tokens (JWTs naming it) and refresh tokens belong to it, and end with it."""

    __tablename__ = "oauth_grants"
    __table_args__ = (Index("ix_oauth_grants_user_id_client_id", "user_id", "client_id"),
                      Index("ix_oauth_grants_expires_at", "expires_at"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(  # NULL: the client's own (service)
        ForeignKey("users.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # The workspace picked for the `workspace` scope; NULL when the membership is gone.
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="SET NULL"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)  # sid: auth_tokens
    auth_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # its last token's
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthCode(Base):
    """An authorization code (only its sha256): 60 seconds, once."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What redeeming it granted: revoked if the code is presented again.
    grant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="SET NULL"))


class OAuthRefreshToken(Base):
    """A refresh token (only its sha256). Rotated on every use; a used one presented again
    revokes its grant, the whole family."""

    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Core tables for the hot paths: services select columns and get rows, not entities.
users: Table = cast(Table, User.__table__)
workspaces: Table = cast(Table, Workspace.__table__)
members: Table = cast(Table, WorkspaceMember.__table__)
invites: Table = cast(Table, WorkspaceInvite.__table__)
auth_tokens: Table = cast(Table, AuthToken.__table__)
account_tokens: Table = cast(Table, AccountToken.__table__)
account_events: Table = cast(Table, AccountEvent.__table__)
outbox: Table = cast(Table, EmailOutbox.__table__)
audit_events: Table = cast(Table, AuditEvent.__table__)
rate_limit_counters: Table = cast(Table, RateLimitCounter.__table__)
events: Table = cast(Table, Event.__table__)
event_horizon: Table = cast(Table, EventHorizon.__table__)
webhook_endpoints: Table = cast(Table, WebhookEndpoint.__table__)
webhook_deliveries: Table = cast(Table, WebhookDelivery.__table__)
webhook_attempts: Table = cast(Table, WebhookAttempt.__table__)
signing_keys: Table = cast(Table, SigningKey.__table__)
oauth_clients: Table = cast(Table, OAuthClient.__table__)
oauth_client_workspaces: Table = cast(Table, OAuthClientWorkspace.__table__)
oauth_consents: Table = cast(Table, OAuthConsent.__table__)
oauth_grants: Table = cast(Table, OAuthGrant.__table__)
oauth_codes: Table = cast(Table, OAuthCode.__table__)
oauth_refresh_tokens: Table = cast(Table, OAuthRefreshToken.__table__)
