"""Consents, asked once per user and scope set and widened by later ones; the apps connected
to an account (consented, or holding a grant in force); revoking one ends its consent and
grants and is told in the account's trail. On both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, get_args

import time_machine
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.factories import Factory
from tests.oauth.test_clients import WEB, add_grant, refused, run
from workspaces import clock
from workspaces.accounts.events import ACTIONS, list_account_events
from workspaces.events.changes import AccountOnlyAction
from workspaces.models import oauth_consents, oauth_grants, oauth_refresh_tokens
from workspaces.oauth import clients, consents
from workspaces.oauth.scopes import DESCRIPTIONS
from workspaces.security import hash_token, new_token


def _client(url: str, name: str, **options: Any) -> str:
    made = run(url, lambda conn: clients.create_client(conn, name=name, redirect_uris=[WEB],
                                                       **options))
    return made.client.id


def _users(url: str, *emails: str) -> list[uuid.UUID]:
    make = Factory(url)
    try:
        return [make.user(email).id for email in emails]
    finally:
        make.close()


def test_a_consent_covers_the_scopes_granted_and_grows_with_later_ones(app_db: str) -> None:
    ann, bob = _users(app_db, "ann@example.com", "bob@example.com")
    app = _client(app_db, "Acme")

    def consented(user: uuid.UUID, *scopes: str) -> bool:
        return run(app_db, lambda conn: consents.consented(
            conn, user_id=user, client_id=app, scopes=list(scopes)))

    assert not consented(ann, "openid")
    start = clock.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as traveller:
        first = run(app_db, lambda conn: consents.record_consent(
            conn, user_id=ann, client_id=app, scopes=["email", "openid", "email"]))
        assert first == ["openid", "email"]  # the vocabulary's order, once each
        assert consented(ann, "openid") and consented(ann, "email", "openid")
        assert not consented(ann, "openid", "profile")  # more than was granted: asked again
        assert not consented(bob, "openid")  # one user's consent is not another's

        traveller.shift(timedelta(days=1))
        again = run(app_db, lambda conn: consents.record_consent(
            conn, user_id=ann, client_id=app, scopes=["openid"]))
        assert again == ["openid", "email"]
        assert run(app_db, lambda conn: _granted_at(conn, ann, app)) == start  # nothing new

        traveller.shift(timedelta(days=1))
        wider = run(app_db, lambda conn: consents.record_consent(
            conn, user_id=ann, client_id=app, scopes=["profile", "workspace"]))
        assert wider == ["openid", "email", "profile", "workspace"]  # a union, not a swap
        assert consented(ann, "openid", "email", "profile", "workspace")
        assert run(app_db, lambda conn: _granted_at(conn, ann, app)) == start + timedelta(
            days=2)


async def _granted_at(conn: AsyncConnection, user: uuid.UUID, app: str) -> Any:
    value = (await conn.execute(select(oauth_consents.c.granted_at).where(
        oauth_consents.c.user_id == user, oauth_consents.c.client_id == app))).scalar_one()
    return clock.aware(value)


def test_connected_apps_lists_consents_and_grants_in_force_with_their_words(
        app_db: str) -> None:
    ann, bob = _users(app_db, "ann@example.com", "bob@example.com")
    zeta = _client(app_db, "zeta Board", scopes=["openid", "email", "workspace"])
    alpha = _client(app_db, "Alpha Docs", trusted=True)  # skips consent, holds a grant
    gone = _client(app_db, "Old Tool")  # its only grant was revoked: not listed
    stale = _client(app_db, "Stale")  # its only grant expired: not listed
    _client(app_db, "Nobody's")  # connected to no one

    start = clock.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as traveller:
        async def connect(conn: AsyncConnection) -> None:
            await consents.record_consent(conn, user_id=ann, client_id=zeta,
                                          scopes=["workspace", "openid", "email"])
            await consents.record_consent(conn, user_id=bob, client_id=gone,
                                          scopes=["openid"])
            await add_grant(conn, alpha, ann, scopes=["openid", "offline_access"])
            await add_grant(conn, gone, ann, scopes=["openid"], revoked=True)
            await add_grant(conn, stale, ann, scopes=["openid"], refresh=False,
                            expires_in=timedelta(minutes=10))

        run(app_db, connect)
        traveller.shift(timedelta(hours=2))

        async def refreshed(conn: AsyncConnection) -> None:  # the app refreshed its tokens
            grant_id = (await conn.execute(select(oauth_grants.c.id).where(
                oauth_grants.c.client_id == alpha))).scalar_one()
            await conn.execute(insert(oauth_refresh_tokens).values(
                token_hash=hash_token(new_token()), grant_id=grant_id,
                created_at=clock.now(), expires_at=clock.now() + timedelta(days=30)))

        run(app_db, refreshed)
        apps = run(app_db, lambda conn: consents.connected_apps(conn, user_id=ann))

    assert [app.name for app in apps] == ["Alpha Docs", "zeta Board"]  # by name, any case
    docs, board = apps
    assert docs.client_id == alpha
    assert [s.scope for s in docs.scopes] == ["openid", "offline_access"]
    assert docs.scopes[1].description == DESCRIPTIONS["offline_access"]
    assert clock.aware(docs.granted_at) == start
    assert docs.last_used_at == start + timedelta(hours=2)
    assert [(s.scope, s.description) for s in board.scopes] == [
        (s, DESCRIPTIONS[s]) for s in ("openid", "email", "workspace")]
    assert board.granted_at == start and board.last_used_at is None  # consented, no token yet
    assert [app.name for app in run(app_db, lambda conn: consents.connected_apps(
        conn, user_id=bob))] == ["Old Tool"]  # Bob's consent, not Ann's revoked grant


def test_revoking_an_app_ends_its_consent_and_grants_and_is_told(app_db: str) -> None:
    ann, bob = _users(app_db, "ann@example.com", "bob@example.com")
    app = _client(app_db, "Acme Board")
    other = _client(app_db, "Other")

    async def connect(conn: AsyncConnection) -> dict[str, uuid.UUID]:
        for user in (ann, bob):
            await consents.record_consent(conn, user_id=user, client_id=app,
                                          scopes=["openid"])
        return {"ann": await add_grant(conn, app, ann, scopes=["openid"]),
                "ann-2": await add_grant(conn, app, ann, scopes=["openid", "email"]),
                "bob": await add_grant(conn, app, bob, scopes=["openid"]),
                "other": await add_grant(conn, other, ann, scopes=["openid"]),
                "service": await add_grant(conn, app, None, scopes=["openid"])}

    grants = run(app_db, connect)
    name = run(app_db, lambda conn: consents.revoke_app(conn, user_id=ann, client_id=app))
    assert name == "Acme Board"

    async def state(conn: AsyncConnection) -> tuple[dict[uuid.UUID, bool], set[uuid.UUID],
                                                    set[uuid.UUID]]:
        revoked = {row.id: row.revoked_at is not None for row in await conn.execute(
            select(oauth_grants.c.id, oauth_grants.c.revoked_at))}
        with_refresh = set((await conn.execute(
            select(oauth_refresh_tokens.c.grant_id))).scalars())
        consenting = set((await conn.execute(select(oauth_consents.c.user_id))).scalars())
        return revoked, with_refresh, consenting

    revoked, with_refresh, consenting = run(app_db, state)
    assert {key for key, grant in grants.items() if revoked[grant]} == {"ann", "ann-2"}
    assert {key for key, grant in grants.items() if grant in with_refresh} == {
        "bob", "other", "service"}
    assert consenting == {bob}  # asked again next time
    assert not run(app_db, lambda conn: consents.consented(
        conn, user_id=ann, client_id=app, scopes=["openid"]))
    assert [a.name for a in run(app_db, lambda conn: consents.connected_apps(
        conn, user_id=ann))] == ["Other"]

    def revocations(user: uuid.UUID) -> list[tuple[str, dict[str, Any], str]]:
        trail = run(app_db, lambda conn: list_account_events(conn, user_id=user))
        return [(e.action, e.detail, e.words) for e in trail if e.action == "app_revoked"]

    assert revocations(ann) == [
        ("app_revoked", {"client_id": app, "name": "Acme Board"},
         "A connected app's access was revoked")]
    assert revocations(bob) == []

    again = refused(app_db, lambda conn: consents.revoke_app(conn, user_id=ann,
                                                             client_id=app))
    assert again.code == "app_not_connected" and again.status == 404
    unknown = refused(app_db, lambda conn: consents.revoke_app(conn, user_id=ann,
                                                               client_id="wsc_nope"))
    assert unknown.code == "app_not_connected"
    assert len(revocations(ann)) == 1  # a refusal tells nothing


def test_a_trusted_app_without_consent_can_be_revoked_through_its_grants(app_db: str) -> None:
    (ann,) = _users(app_db, "ann@example.com")
    app = _client(app_db, "First-party", trusted=True)
    grant = run(app_db, lambda conn: add_grant(conn, app, ann, scopes=["openid"]))
    assert run(app_db, lambda conn: consents.revoke_app(
        conn, user_id=ann, client_id=app)) == "First-party"

    async def revoked_at(conn: AsyncConnection) -> Any:
        return (await conn.execute(select(oauth_grants.c.revoked_at).where(
            oauth_grants.c.id == grant))).scalar_one()

    assert run(app_db, revoked_at) is not None

    # A grant that expired (not yet swept by housekeeping) connects nothing either.
    async def expire(conn: AsyncConnection) -> None:
        await conn.execute(update(oauth_grants).values(revoked_at=None,
                                                       expires_at=clock.now()))

    run(app_db, expire)
    assert run(app_db, lambda conn: consents.connected_apps(conn, user_id=ann)) == []


def test_every_account_only_action_has_words_on_the_account_page() -> None:
    assert set(get_args(AccountOnlyAction)) <= set(ACTIONS)
