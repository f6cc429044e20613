"""Test data in one line each, written straight into a migrated database (no HTTP round trips,
no Argon2 per account): users with a bearer token, workspaces, members, invites in any state.

    make = Factory(api.db.url)
    ann = make.user("ann@example.com")              # ann.headers works against the API
    acme = make.workspace(ann, "Acme")              # ann owns it
    bob = make.member(acme, "bob@example.com", "admin")
    make.invite(acme, "cat@example.com", status="expired")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, insert

from workspaces import clock
from workspaces.db import create_sync_engine, parse_url
from workspaces.events.tell import current_txid, new_event_id
from workspaces.models import (
    account_events,
    account_tokens,
    audit_events,
    auth_tokens,
    event_horizon,
    events,
    invites,
    members,
    oauth_client_workspaces,
    oauth_clients,
    oauth_codes,
    oauth_consents,
    oauth_grants,
    oauth_refresh_tokens,
    outbox,
    rate_limit_counters,
    signing_keys,
    users,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    workspaces,
)
from workspaces.security import hash_password, hash_token, new_token, seal
from workspaces.validation import email_skeleton, normalize_email, slugify

PASSWORD = "correct horse battery"


@cache
def _password_hash() -> str:
    """One Argon2 hash of PASSWORD for every factory-made account (signing in works)."""
    return hash_password(PASSWORD)


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Workspace:
    id: uuid.UUID
    slug: str


@dataclass(frozen=True)
class Invite:
    id: uuid.UUID
    token: str  # what the emailed link ends with


class Factory:
    """Rows for one database; every call commits at once."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_sync_engine(parse_url(url), sqlite_immediate=True)
        self.count = 0

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Any, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(table).values(**values))

    def user(self, email: str | None = None, name: str = "Someone") -> User:
        """An account (password PASSWORD) with a live API token and its security trail; every
        other one verified, the others with an open confirmation link."""
        self.count += 1
        address = normalize_email(email or f"user{self.count}@example.com")
        user_id, token, now = uuid.uuid4(), new_token("wst_"), clock.now()
        verified = self.count % 2 == 0
        self._insert(users, id=user_id, email=address, name=name,
                     password_hash=_password_hash(), email_skeleton=email_skeleton(address),
                     created_at=now, updated_at=now, email_verified_at=now if verified else None)
        self._insert(auth_tokens, id=uuid.uuid4(), user_id=user_id, token_hash=hash_token(token),
                     kind="api", created_at=now, expires_at=now + timedelta(days=1))
        self._insert(account_events, id=uuid.uuid4(), user_id=user_id, action="signed_up",
                     detail={"verified": False}, created_at=now)
        if not verified:
            self._insert(account_tokens, id=uuid.uuid4(), user_id=user_id,
                         purpose="verify_email", token_hash=hash_token(new_token()),
                         email=address, created_at=now, expires_at=now + timedelta(days=2))
        return User(user_id, address, token)

    def workspace(self, owner: User, name: str = "Acme") -> Workspace:
        """A workspace that `owner` owns."""
        self.count += 1
        workspace_id = uuid.uuid4()
        slug = f"{slugify(name)}-{self.count}"
        self._insert(workspaces, id=workspace_id, name=name, slug=slug, created_at=clock.now())
        self._insert(members, workspace_id=workspace_id, user_id=owner.id, role="owner",
                     created_at=clock.now())
        return Workspace(workspace_id, slug)

    def member(self, workspace: Workspace, who: User | str | None = None,
               role: str = "member") -> User:
        """`who` (a user, or a new one with this address) joins with `role`."""
        user = who if isinstance(who, User) else self.user(who)
        self._insert(members, workspace_id=workspace.id, user_id=user.id, role=role,
                     created_at=clock.now())
        return user

    def invite(self, workspace: Workspace, email: str | None = None, role: str = "member",
               status: str = "pending", by: User | None = None) -> Invite:
        """An invite in any effective state: pending, expired, accepted, revoked, declined."""
        self.count += 1
        invite_id, token, now = uuid.uuid4(), new_token(), clock.now()
        stored = "pending" if status == "expired" else status
        expires_at: datetime = now - timedelta(hours=1) if status == "expired" else (
            now + timedelta(days=7))
        self._insert(invites, id=invite_id, workspace_id=workspace.id,
                     email=normalize_email(email or f"invitee{self.count}@example.com"),
                     role=role, token=hash_token(token), status=stored, expires_at=expires_at,
                     created_at=now, created_by_user_id=by.id if by else None,
                     accepted_at=now if stored == "accepted" else None,
                     revoked_at=now if stored == "revoked" else None,
                     declined_at=now if stored == "declined" else None)
        return Invite(invite_id, token)

    def email(self, workspace: Workspace, invite: Invite | None, status: str) -> None:
        """An outbox row (pending, sent, logged or failed), about `invite` if given."""
        now = clock.now()
        self.count += 1
        self._insert(outbox, id=uuid.uuid4(), workspace_id=workspace.id,
                     invite_id=invite.id if invite else None,
                     to_address=f"invitee{self.count}@example.com", subject="You are invited",
                     body_text="text", body_html="<p>html</p>", sealed_secret=None,
                     status=status, attempts=0 if status == "pending" else 1,
                     next_attempt_at=now, locked_until=None,
                     last_error="550 no such mailbox" if status == "failed" else None,
                     created_at=now, sent_at=now if status in ("sent", "logged") else None)

    def audit(self, workspace: Workspace, actor: User, action: str = "invite.created") -> None:
        self._insert(audit_events, id=uuid.uuid4(), workspace_id=workspace.id,
                     actor_user_id=actor.id, actor_email=actor.email, action=action,
                     target_type="invite",
                     target_id=str(uuid.uuid4()), target_email="someone@example.com",
                     detail={"role": "member"}, created_at=clock.now())

    def counter(self, key: str) -> None:
        self._insert(rate_limit_counters, key=key, window_start=clock.now(), count=3)

    def event(self, workspace: Workspace | None, kind: str = "member.added") -> int:
        """An event in the log (of the workspace, or of no workspace); returns its position."""
        event_id, now = new_event_id(), clock.now()
        body = {"id": event_id, "type": kind, "version": 1,
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
                "workspace": {"id": str(workspace.id), "slug": workspace.slug}
                if workspace else None, "actor": {"type": "system", "id": None, "email": None},
                "data": {}}
        with self.engine.begin() as conn:
            return int(conn.execute(insert(events).values(
                txid=current_txid(self.engine.dialect.name), id=event_id, type=kind,
                workspace_id=workspace.id if workspace else None, occurred_at=now,
                payload=body).returning(events.c.position)).scalar_one())

    def endpoint(self, workspace: Workspace | None, url: str = "https://example.com/hook",
                 enabled: bool = True) -> uuid.UUID:
        """A webhook endpoint (of the workspace, or of the instance) wanting every type."""
        endpoint_id, now = uuid.uuid4(), clock.now()
        self._insert(webhook_endpoints, id=endpoint_id,
                     workspace_id=workspace.id if workspace else None, url=url,
                     description="", event_types=None,
                     sealed_secret=seal("x" * 32, "whsec_c2VjcmV0"), enabled=enabled,
                     created_at=now, updated_at=now)
        return endpoint_id

    def delivery(self, endpoint_id: uuid.UUID, position: int, status: str = "pending") -> None:
        """A delivery of the event at `position` to the endpoint, with one attempt unless
        pending."""
        delivery_id, now = uuid.uuid4(), clock.now()
        self._insert(webhook_deliveries, id=delivery_id, endpoint_id=endpoint_id,
                     event_position=position, message_id=f"evt_{uuid.uuid4().hex}",
                     status=status, attempts=0 if status == "pending" else 1,
                     next_attempt_at=now, created_at=now,
                     delivered_at=now if status == "delivered" else None)
        if status != "pending":
            self._insert(webhook_attempts, id=uuid.uuid4(), delivery_id=delivery_id,
                         endpoint_id=endpoint_id, attempted_at=now,
                         status_code=200 if status == "delivered" else 500, duration_ms=12,
                         response_excerpt="ok")

    def oauth(self, workspace: Workspace, user: User) -> None:
        """A client registered for the workspace, with the user's consent, a grant in force,
        a code redeemed for it and the grant's refresh token."""
        client_id, grant_id, now = f"wsc_{uuid.uuid4().hex[:16]}", uuid.uuid4(), clock.now()
        later = now + timedelta(days=30)
        self._insert(oauth_clients, id=client_id, name=f"App of {workspace.slug}",
                     secret_hash=hash_token(new_token()), trusted=False,
                     redirect_uris=["https://app.example.com/callback"],
                     post_logout_redirect_uris=[], scopes=["openid", "members:read"],
                     workspace_restricted=True, created_at=now, updated_at=now)
        self._insert(oauth_client_workspaces, client_id=client_id, workspace_id=workspace.id)
        self._insert(oauth_consents, user_id=user.id, client_id=client_id, scopes=["openid"],
                     granted_at=now)
        self._insert(oauth_grants, id=grant_id, client_id=client_id, user_id=user.id,
                     scopes=["openid", "offline_access"], workspace_id=workspace.id,
                     session_id=uuid.uuid4(), auth_time=now, created_at=now, expires_at=later)
        self._insert(oauth_codes, code_hash=hash_token(new_token()), client_id=client_id,
                     user_id=user.id, redirect_uri="https://app.example.com/callback",
                     scopes=["openid"], nonce="n", code_challenge=None,
                     workspace_id=workspace.id, session_id=uuid.uuid4(), auth_time=now,
                     created_at=now, expires_at=now + timedelta(seconds=60), used_at=now,
                     grant_id=grant_id)
        self._insert(oauth_refresh_tokens, token_hash=hash_token(new_token()),
                     grant_id=grant_id, created_at=now, expires_at=later, used_at=None)

    def signing_key(self) -> None:
        """A signing key row (its private part sealed with a key no server here holds)."""
        now = clock.now()
        self._insert(signing_keys, kid=uuid.uuid4().hex, alg="RS256",
                     public_jwk={"kty": "RSA", "n": "AQAB", "e": "AQAB"},
                     sealed_private_key=seal("x" * 32, "not a key"), created_at=now,
                     activates_at=now, retired_at=None)

    def horizon(self) -> None:
        self._insert(event_horizon, id=1, txid=0, position=0, swept_at=clock.now())


INVITE_STATES = ("pending", "expired", "accepted", "revoked", "declined")
EMAIL_STATES = ("pending", "sent", "logged", "failed")
DELIVERY_STATES = ("pending", "delivered", "failed")


def production_like(url: str, invite_states: tuple[str, ...] = INVITE_STATES
                    ) -> tuple[User, Workspace]:
    """A migrated database with rows in every table: two workspaces with owners, admins and
    members, invites in every state each with its emails in every delivery state, audit
    events, API tokens, rate-limit counters, events with webhook deliveries in every state.
    Returns the first workspace and its owner."""
    make = Factory(url)
    first: tuple[User, Workspace] | None = None
    try:
        for name in ("Acme", "Globex"):
            owner = make.user()
            place = make.workspace(owner, name)
            make.member(place, None, "admin")
            make.member(place, None, "member")
            for state in invite_states:
                invite = make.invite(place, status=state, by=owner)
                make.audit(place, owner)
                for delivery in EMAIL_STATES:
                    make.email(place, invite, delivery)
            make.email(place, None, "sent")  # not about an invite
            make.counter(f"invite:{place.id}")
            hook = make.endpoint(place)
            for delivery in DELIVERY_STATES:
                make.delivery(hook, make.event(place), delivery)
            make.oauth(place, owner)
            first = first or (owner, place)
        make.delivery(make.endpoint(None), make.event(None, "user.created"), "delivered")
        make.horizon()
        make.signing_key()
    finally:
        make.close()
    assert first is not None
    return first
