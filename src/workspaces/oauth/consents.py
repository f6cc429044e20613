"""Consents: the scopes a user let a client have, asked once per user and scope set; and the
apps connected to an account, which the user can revoke ("Connected apps")."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.db import dialect_insert
from workspaces.errors import NotFound
from workspaces.events import changes
from workspaces.events.tell import Actor, tell
from workspaces.models import oauth_clients, oauth_consents, oauth_grants, oauth_refresh_tokens
from workspaces.oauth import scopes as vocabulary
from workspaces.oauth.grants import end_grants


@dataclass(frozen=True)
class GrantedScope:
    scope: str
    description: str  # what it lets the app do, in the user's words


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    name: str
    scopes: list[GrantedScope]
    granted_at: datetime  # the consent's latest widening, or the oldest grant in force
    last_used_at: datetime | None  # when it last got tokens (a sign-in or a refresh)


def _ordered(scopes: set[str]) -> list[str]:
    """The vocabulary's order; a scope it no longer has goes last."""
    known = [s for s in vocabulary.ALL_SCOPES if s in scopes]
    return known + sorted(scopes - set(known))


async def consented(conn: AsyncConnection, *, user_id: uuid.UUID, client_id: str,
                    scopes: Sequence[str]) -> bool:
    """Whether the user already let the client have every one of `scopes`."""
    granted = (await conn.execute(select(oauth_consents.c.scopes).where(
        oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id))
    ).scalar()
    return granted is not None and set(scopes) <= set(granted)


async def record_consent(conn: AsyncConnection, *, user_id: uuid.UUID, client_id: str,
                         scopes: Sequence[str]) -> list[str]:
    """Remember that the user let the client have `scopes`, beside what they granted it
    before (a later request for any of them is not asked again); returns all of them."""
    now = clock.now()
    wanted = _ordered(set(scopes))
    inserted = await conn.execute(
        dialect_insert(conn.dialect.name)(oauth_consents)
        .values(user_id=user_id, client_id=client_id, scopes=wanted, granted_at=now)
        .on_conflict_do_nothing(index_elements=[oauth_consents.c.user_id,
                                                oauth_consents.c.client_id]))
    if inserted.rowcount:
        return wanted
    # There was one: widen it under its row lock, so two consents at once both count.
    mine = (oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id)
    before = (await conn.execute(select(oauth_consents.c.scopes).where(*mine)
                                 .with_for_update())).scalar_one()
    union = _ordered(set(before) | set(scopes))
    if set(union) != set(before):
        await conn.execute(update(oauth_consents).where(*mine)
                           .values(scopes=union, granted_at=now))
    return union


@dataclass
class _Seen:
    name: str
    scopes: set[str]
    granted_at: datetime
    consented: bool


def _in_force(now: datetime) -> Any:
    return (oauth_grants.c.revoked_at.is_(None)) & (oauth_grants.c.expires_at > now)


_DESCRIPTIONS: dict[str, str] = {scope: words for scope, words in vocabulary.DESCRIPTIONS.items()}


def _described(scopes: set[str]) -> list[GrantedScope]:
    return [GrantedScope(s, _DESCRIPTIONS.get(s, s)) for s in _ordered(scopes)]


async def connected_apps(conn: AsyncConnection, *, user_id: uuid.UUID) -> list[ConnectedApp]:
    """The apps that have the user's consent or hold a grant in force (a trusted client
    skips consent, yet holds tokens the user may want to end), by name."""
    now = clock.now()
    apps: dict[str, _Seen] = {}
    consents = await conn.execute(
        select(oauth_consents.c.client_id, oauth_clients.c.name, oauth_consents.c.scopes,
               oauth_consents.c.granted_at)
        .join(oauth_clients, oauth_clients.c.id == oauth_consents.c.client_id)
        .where(oauth_consents.c.user_id == user_id))
    for consent in consents:
        apps[consent.client_id] = _Seen(consent.name, set(consent.scopes),
                                        clock.aware(consent.granted_at), consented=True)
    refreshed = (select(func.max(oauth_refresh_tokens.c.created_at))
                 .where(oauth_refresh_tokens.c.grant_id == oauth_grants.c.id)
                 .scalar_subquery())
    grants = await conn.execute(
        select(oauth_grants.c.client_id, oauth_clients.c.name, oauth_grants.c.scopes,
               oauth_grants.c.created_at, _in_force(now).label("live"),
               refreshed.label("refreshed_at"))
        .join(oauth_clients, oauth_clients.c.id == oauth_grants.c.client_id)
        .where(oauth_grants.c.user_id == user_id))
    used: dict[str, datetime] = {}
    for row in grants:
        created = clock.aware(row.created_at)
        last = max(created, clock.aware(row.refreshed_at)) if row.refreshed_at else created
        used[row.client_id] = max(last, used.get(row.client_id, last))
        if not row.live:
            continue
        app = apps.setdefault(row.client_id, _Seen(row.name, set(), created, consented=False))
        app.scopes |= set(row.scopes)
        if not app.consented:
            app.granted_at = min(app.granted_at, created)
    return sorted((ConnectedApp(client_id, app.name, _described(app.scopes), app.granted_at,
                                used.get(client_id))
                   for client_id, app in apps.items()),
                  key=lambda app: (app.name.casefold(), app.client_id))


async def revoke_app(conn: AsyncConnection, *, user_id: uuid.UUID, client_id: str) -> str:
    """End an app's access to the account: its consent is forgotten (it asks again) and
    every grant of the user to it ends (its tokens stop working). Told in the account's
    trail; returns the app's name. 404 `app_not_connected` when it had neither."""
    name = (await conn.execute(select(oauth_clients.c.name).where(
        oauth_clients.c.id == client_id))).scalar()
    forgotten = ended = 0
    if name is not None:
        forgotten = (await conn.execute(delete(oauth_consents).where(
            oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id))
        ).rowcount
        ended = await end_grants(conn, client_id=client_id, user_id=user_id)
    if not (forgotten or ended):
        raise NotFound("This app has no access to your account: it was revoked already, "
                       "or removed.", code="app_not_connected")
    await tell(conn, changes.account_only(user_id, "app_revoked", Actor("user", user_id),
                                          {"client_id": client_id, "name": name}))
    return str(name)
