"""Workspaces and who may touch them. `load_access` is the one place that decides."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import chain, count
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit, roles, rows
from workspaces.accounts.service import (
    TOKEN_USER,
    USER_COLUMNS,
    UserInfo,
    get_user_by_email,
    note_use,
    token_params,
    user_of,
)
from workspaces.errors import Forbidden, InvalidInput, NotFound
from workspaces.events import changes
from workspaces.events.tell import Actor, WorkspaceRef, tell
from workspaces.members import store
from workspaces.models import (
    members,
    oauth_client_workspaces,
    oauth_clients,
    oauth_grants,
    users,
    workspaces,
)
from workspaces.settings import Settings
from workspaces.validation import clean_name, normalize_email, slugify

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class WorkspaceInfo:
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: str  # the caller's role


@dataclass(frozen=True, slots=True)
class ClientRef:
    """A service client (a product's backend) acting with its own credential, as it is named
    now. `restricted`: it reaches only the workspaces it was registered with."""

    id: str
    name: str
    restricted: bool = False


Principal = UserInfo | ClientRef  # who acts on a workspace


@dataclass(frozen=True, slots=True)
class Access:
    """A caller's standing in one workspace, loaded once per request: a member (their role), or
    a service client (the rank of `roles.SERVICE_ROLE`)."""

    workspace: WorkspaceInfo
    principal: Principal
    operator: bool = False  # an operator's command, acting as the user

    @property
    def user(self) -> UserInfo | None:
        """The member acting; None for a service client."""
        return self.principal if isinstance(self.principal, UserInfo) else None

    @property
    def client(self) -> ClientRef | None:
        return self.principal if isinstance(self.principal, ClientRef) else None

    @property
    def role(self) -> str:
        return self.workspace.role

    @property
    def actor(self) -> Actor:
        """Who the workspace's events name as having acted."""
        if isinstance(self.principal, ClientRef):
            return Actor.client(self.principal.id, self.principal.name)
        return Actor("operator" if self.operator else "user", self.principal.id,
                     self.principal.email)

    @property
    def ref(self) -> WorkspaceRef:
        return WorkspaceRef(self.workspace.id, self.workspace.slug)

    @property
    def key(self) -> str:
        """Whom per-sender limits count: the user's id, or the client's."""
        if isinstance(self.principal, ClientRef):
            return f"client:{self.principal.id}"
        return str(self.principal.id)

    def is_me(self, user_id: uuid.UUID) -> bool:
        """Whether `user_id` is the caller's own account (never for a client)."""
        return self.user is not None and self.user.id == user_id

    def require_user(self, doing: str) -> UserInfo:
        """The member acting; 403 `user_required` for a service client, which has no account
        (no membership to leave or hand over, no ownership)."""
        if self.user is None:
            raise Forbidden(f"A service client cannot {doing}: only a person signed in as a "
                            "member can.", code="user_required")
        return self.user

    def at_least(self, role: str) -> bool:
        return roles.at_least(self.role, role)

    def can_grant(self, role: str) -> bool:
        """The role ceiling (`roles.can_grant`) for this caller: pages ask it to show only
        what the caller may do; services ask it through `require_grant`."""
        return roles.can_grant(self.role, role)

    def _standing(self) -> str:
        if self.client is not None:
            return f"a service client acts as an {self.role} of {self.workspace.name}"
        return f"you are a {self.role} of {self.workspace.name}"

    def require_grant(self, role: str, doing: str) -> None:
        if not self.can_grant(role):
            whose = "your own role" if self.client is None else "a service client's rank"
            raise Forbidden(f"You cannot {doing}: {role} is above {whose} ({self.role}) in "
                            f"{self.workspace.name}.", code="role_above_inviter")

    def require(self, role: str, doing: str) -> None:
        if not self.at_least(role):
            raise Forbidden(f"Only {role}s and above can {doing}; {self._standing()}.",
                            code="insufficient_role")


def _info(row: Any) -> WorkspaceInfo:
    return WorkspaceInfo(row.id, row.name, row.slug, clock.aware(row.created_at), row.role)


_WORKSPACE_COLUMNS = (workspaces.c.id, workspaces.c.name, workspaces.c.slug,
                      workspaces.c.created_at)
_COLUMNS = (*_WORKSPACE_COLUMNS, members.c.role)
_SERVICE_ROLE = literal(roles.SERVICE_ROLE).label("role")


def _no_workspace(slug: str) -> NotFound:
    return NotFound(f"No workspace {slug!r} that you belong to.", code="workspace_not_found")


async def load_access(conn: AsyncConnection, *, slug: str, user: UserInfo) -> Access:
    """The workspace and the caller's role; 404 alike for missing and not-a-member."""
    if not SLUG.fullmatch(slug):  # also keeps NUL bytes and the like away from the database
        raise _no_workspace(slug)
    row = (await conn.execute(
        select(*_COLUMNS)
        .join(members, members.c.workspace_id == workspaces.c.id)
        .where(workspaces.c.slug == slug, members.c.user_id == user.id)
    )).first()
    if row is None:
        raise _no_workspace(slug)
    return Access(_info(row), user)


_ACCESS_BY_TOKEN = TOKEN_USER.add_columns(
    workspaces.c.id.label("workspace_id"), workspaces.c.name.label("w_name"), workspaces.c.slug,
    workspaces.c.created_at.label("w_created_at"), members.c.role,
).outerjoin(
    members.join(workspaces, workspaces.c.id == members.c.workspace_id),
    and_(members.c.user_id == users.c.id, workspaces.c.slug == bindparam("slug")),
)


async def access_by_token(conn: AsyncConnection, *, token: str, kind: str, slug: str
                          ) -> Access | None:
    """`load_access` for the caller of a token, in one round trip (the API's hot path).

    None when the token is unknown, expired or signed out; then 404 as `load_access`.
    """
    valid = SLUG.fullmatch(slug) is not None  # else NULL: matches nothing, reaches nothing
    row = await rows.fetch_first(conn, _ACCESS_BY_TOKEN, {**token_params(token, kind),
                                                          "slug": slug if valid else None})
    if row is None:
        return None
    await note_use(conn, row)
    if row.workspace_id is None:
        raise _no_workspace(slug)
    workspace = WorkspaceInfo(row.workspace_id, row.w_name, row.slug,
                              clock.aware(row.w_created_at), row.role)
    return Access(workspace, user_of(row))


_WORKSPACE_BY_SLUG = (workspaces.c.id.label("workspace_id"), workspaces.c.name.label("w_name"),
                      workspaces.c.slug, workspaces.c.created_at.label("w_created_at"))
# The grant a JWT access token names (`gid`), of the client it names, not revoked (a deleted
# client's grants went with it).
LIVE_GRANT = (oauth_grants.c.id == bindparam("grant_id"),
              oauth_grants.c.client_id == bindparam("client_id"),
              oauth_grants.c.revoked_at.is_(None))
# A user's access token: its grant live, the user, and their membership of the workspace.
_USER_BY_GRANT = (
    select(*USER_COLUMNS, *_WORKSPACE_BY_SLUG, members.c.role)
    .select_from(oauth_grants.join(users, users.c.id == oauth_grants.c.user_id))
    .outerjoin(members.join(workspaces, workspaces.c.id == members.c.workspace_id),
               and_(members.c.user_id == users.c.id, workspaces.c.slug == bindparam("slug")))
    .where(*LIVE_GRANT, oauth_grants.c.user_id == bindparam("user_id"))
)
# A service token: its grant live, the client, the workspace and whether the client reaches it.
_CLIENT_BY_GRANT = (
    select(oauth_clients.c.id.label("client_id"), oauth_clients.c.name.label("client_name"),
           oauth_clients.c.workspace_restricted, *_WORKSPACE_BY_SLUG,
           oauth_client_workspaces.c.workspace_id.label("reached"))
    .select_from(oauth_grants.join(oauth_clients, oauth_clients.c.id == oauth_grants.c.client_id))
    .outerjoin(workspaces, workspaces.c.slug == bindparam("slug"))
    .outerjoin(oauth_client_workspaces,
               and_(oauth_client_workspaces.c.client_id == oauth_clients.c.id,
                    oauth_client_workspaces.c.workspace_id == workspaces.c.id))
    .where(*LIVE_GRANT, oauth_grants.c.user_id.is_(None))
)


async def access_by_grant(conn: AsyncConnection, *, grant_id: uuid.UUID, client_id: str,
                          user_id: uuid.UUID | None, slug: str,
                          only: uuid.UUID | None = None) -> Access | None:
    """`load_access` for the caller of a JWT access token (already verified), in one round
    trip: its grant must be live (not revoked; a deleted client's grants are gone with it).

    `user_id`: the user the token acts for, with their live role; None: the client's own
    service token, acting with `roles.SERVICE_ROLE` on every workspace or, if the client is
    restricted, on its own. `only`: the workspace the token was issued for (the `workspace`
    scope), the one it reaches. None when the grant is not live; 404 as `load_access` for a
    workspace the caller does not reach.
    """
    valid = SLUG.fullmatch(slug) is not None
    params = {"grant_id": grant_id, "client_id": client_id, "slug": slug if valid else None}
    row: Any
    if user_id is None:
        row = await rows.fetch_first(conn, _CLIENT_BY_GRANT, params)
        if row is None:
            return None
        reaches = row.workspace_id is not None and (
            not row.workspace_restricted or row.reached is not None)
        principal: Principal = ClientRef(row.client_id, row.client_name,
                                         bool(row.workspace_restricted))
        role: str | None = roles.SERVICE_ROLE
    else:
        row = await rows.fetch_first(conn, _USER_BY_GRANT, {**params, "user_id": user_id})
        if row is None:
            return None
        reaches, principal, role = row.workspace_id is not None, user_of(row), row.role
    if not reaches or role is None or (only is not None and row.workspace_id != only):
        raise _no_workspace(slug)
    workspace = WorkspaceInfo(row.workspace_id, row.w_name, row.slug,
                              clock.aware(row.w_created_at), role)
    return Access(workspace, principal)


async def operator_access(conn: AsyncConnection, *, slug: str, email: str | None) -> Access:
    """For operator commands: act as the member with this email, or as the first owner."""
    if email is None:
        email = (await conn.execute(
            select(users.c.email).join(members, members.c.user_id == users.c.id)
            .join(workspaces, workspaces.c.id == members.c.workspace_id)
            .where(workspaces.c.slug == slug, members.c.role == "owner")
            .order_by(members.c.created_at).limit(1)
        )).scalar()
        if email is None:
            raise NotFound(f"No workspace {slug!r}.", code="workspace_not_found")
    access = await load_access(conn, slug=slug, user=await _account(conn, email))
    return replace(access, operator=True)


async def _account(conn: AsyncConnection, email: str) -> UserInfo:
    """The account an operator names by address; 404 `user_not_found` if there is none."""
    user = await get_user_by_email(conn, normalize_email(email))
    if user is None:
        raise NotFound(f"No account for {email}; create it with `workspaces users create`.",
                       code="user_not_found")
    return user


def creation_limit(client: str, settings: Settings) -> ratelimit.Limit:
    """Workspaces created per client address an hour (each would bring a new invite budget)."""
    return ratelimit.Limit(f"workspaces:client:{ratelimit.client_key(client)}",
                           settings.workspace_limit_per_client_per_hour, timedelta(hours=1),
                           "new workspaces from your network",
                           name="workspace_limit_per_client_per_hour")


async def create_workspace(conn: AsyncConnection, *, name: str, owner: UserInfo,
                           limit: ratelimit.Limit | None) -> WorkspaceInfo:
    """Create a workspace with a unique slug derived from the name; the creator owns it.
    Counted against `limit` (None: an operator's command, not limited)."""
    display_name = clean_name(name, field="name")
    base = slugify(display_name)
    now = clock.now()
    workspace_id = uuid.uuid4()
    taken = set((await conn.execute(
        select(workspaces.c.slug).where(workspaces.c.slug.like(f"{base}%"))
    )).scalars())
    numbered = (f"{base}-{n}" for n in count(2))
    first = next(s for s in chain([base], numbered) if s not in taken)
    # A racing request may take the same slug between the read and the insert: retry at random.
    for slug in (first, *(f"{base}-{secrets.token_hex(3)}" for _ in range(3))):
        try:
            async with conn.begin_nested():
                await conn.execute(insert(workspaces).values(
                    id=workspace_id, name=display_name, slug=slug, created_at=now))
        except IntegrityError:
            continue
        ref = WorkspaceRef(workspace_id, slug)
        actor = Actor("user" if limit is not None else "operator", owner.id, owner.email)
        await store.add(conn, ref, user_id=owner.id, email=owner.email, name=owner.name,
                        role="owner", how="created", actor=actor, at=now,
                        before=(changes.workspace_created(ref, display_name, actor),))
        if limit is not None:  # last: a refusal rolls the workspace back with its count
            await ratelimit.hit(conn, limit)
        return WorkspaceInfo(workspace_id, display_name, slug, now, "owner")
    raise RuntimeError(f"no free slug for {base!r} after four tries")


async def create_for_operator(conn: AsyncConnection, *, name: str,
                              owner_email: str) -> WorkspaceInfo:
    """An operator's `workspaces create`: owned by an existing account, not rate limited."""
    owner = await _account(conn, owner_email)
    return await create_workspace(conn, name=name, owner=owner, limit=None)


async def rename_workspace(conn: AsyncConnection, *, access: Access, name: str
                           ) -> WorkspaceInfo:
    """Owners and admins; the slug stays, so links and API paths keep working. Audited as
    `renamed` with the old and new names (an unchanged name changes and records nothing)."""
    display_name = clean_name(name, field="name")
    access = await lock_for_change(conn, access)
    access.require("admin", "rename the workspace")
    old = access.workspace
    if display_name == old.name:
        return old
    await conn.execute(update(workspaces).where(workspaces.c.id == old.id)
                       .values(name=display_name))
    await tell(conn, changes.workspace_renamed(access.ref, old.name, display_name, access.actor))
    return WorkspaceInfo(old.id, display_name, old.slug, old.created_at, old.role)


def check_typed_name(access: Access, typed: str) -> None:
    """The browser's delete asks for the workspace's exact name (outer spaces aside): 422
    `name_mismatch` on the `confirm_name` field otherwise."""
    if typed.strip() != access.workspace.name:
        raise InvalidInput(f"That is not the name of this workspace. Type “{access.workspace.name}”"
                           " exactly as shown (without the quotes) to delete it.",
                           code="name_mismatch",
                           field="confirm_name")


async def delete_workspace(conn: AsyncConnection, *, access: Access) -> None:
    """Owners only; members, invites, queued emails, webhook endpoints and the audit trail go
    with it. Told as `workspace.deleted` (which implies every membership ended)."""
    access = await lock_for_change(conn, access)
    access.require("owner", "delete the workspace")
    await conn.execute(delete(workspaces).where(workspaces.c.id == access.workspace.id))
    await tell(conn, changes.workspace_deleted(access.ref, access.workspace.name, access.actor))


async def list_workspaces(conn: AsyncConnection, *, user: UserInfo,
                          only: uuid.UUID | None = None) -> list[WorkspaceInfo]:
    """The user's workspaces by name; `only`: that one of them (an app's token issued for
    it)."""
    query = (select(*_COLUMNS).join(members, members.c.workspace_id == workspaces.c.id)
             .where(members.c.user_id == user.id)
             .order_by(workspaces.c.name, workspaces.c.id))
    if only is not None:
        query = query.where(workspaces.c.id == only)
    found = await conn.execute(query)
    return [_info(row) for row in found]


async def lock_for_change(conn: AsyncConnection, access: Access) -> Access:
    """Serialise membership changes of one workspace and re-read the caller's role under the
    lock, so a caller demoted by a concurrent request acts with the role they now have.
    (SQLite's BEGIN IMMEDIATE already serialises whole requests.)"""
    if conn.dialect.name == "postgresql":
        # NO KEY UPDATE: serialises changes among themselves without blocking the foreign-key
        # checks (KEY SHARE) of inserts into the workspace's invites or members.
        await conn.execute(
            select(workspaces.c.id).where(workspaces.c.id == access.workspace.id)
            .with_for_update(key_share=True)
        )
    if isinstance(access.principal, ClientRef):  # no membership: the workspace read again
        row = (await conn.execute(select(*_WORKSPACE_COLUMNS, _SERVICE_ROLE).where(
            workspaces.c.id == access.workspace.id))).first()
        if row is None:
            raise _no_workspace(access.workspace.slug)
        return Access(_info(row), access.principal)
    again = await load_access(conn, slug=access.workspace.slug, user=access.principal)
    return replace(again, operator=access.operator)


async def hold_role(conn: AsyncConnection, access: Access) -> Access:
    """Re-read the caller's role and share-lock their membership until the transaction ends.

    For actions that need a role but change no membership (invites): a concurrent demotion or
    removal of the caller either commits first (and is seen here) or waits for this transaction,
    while such actions never wait for one another. A service client's rank holds no row.
    """
    if conn.dialect.name != "postgresql" or access.user is None:
        return access  # SQLite's BEGIN IMMEDIATE already serialises whole requests
    row = (await conn.execute(
        select(*_COLUMNS)
        .join(members, members.c.workspace_id == workspaces.c.id)
        .where(workspaces.c.id == access.workspace.id, members.c.user_id == access.user.id)
        .with_for_update(read=True, of=members)
    )).first()
    if row is None:
        raise _no_workspace(access.workspace.slug)
    return Access(_info(row), access.principal, access.operator)
