"""Apps' grants end as sessions do: a password changed or reset ends every one, a browser
session signed out ends those made in it; the hourly sweep deletes the expired ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from tests.api.test_housekeeping import _sweep
from tests.factories import PASSWORD, Factory
from tests.oauth.conftest import Provider
from workspaces.models import account_tokens, oauth_codes, oauth_grants, oauth_refresh_tokens
from workspaces.security import hash_token, new_token
from workspaces.settings import Settings


def _live(op: Provider, tokens: dict[str, str]) -> bool:
    return op.userinfo(tokens["access_token"]).status_code == 200


def test_a_password_change_ends_every_grant(op: Provider, make: Factory) -> None:
    ann, bob = make.user(), make.user()
    app, other = op.client(), op.client()
    mine = [op.redeem(app, op.code(app, ann)), op.redeem(other, op.code(other, ann))]
    bobs = op.redeem(app, op.code(app, bob))
    changed = op.http.post("/api/me/password", json={
        "current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=ann.headers)
    assert changed.status_code == 200, changed.text
    for tokens, client in zip(mine, (app, other), strict=True):
        assert not _live(op, tokens)
        op.refused(op.refresh(client, tokens["refresh_token"]), 400, "invalid_grant")
    assert _live(op, bobs) and op.refresh(app, bobs["refresh_token"]).status_code == 200


def test_a_password_reset_ends_every_grant(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    tokens = op.redeem(app, op.code(app, ann))
    link, now = new_token(), datetime.now(UTC)
    with make.engine.begin() as conn:
        conn.execute(insert(account_tokens).values(
            id=uuid.uuid4(), user_id=ann.id, purpose="password_reset",
            token_hash=hash_token(link), email=ann.email, created_at=now,
            expires_at=now + timedelta(hours=1)))
    reset = op.http.post("/api/auth/password-reset/confirm",
                         json={"token": link, "password": "a brand new passphrase"})
    assert reset.status_code == 204, reset.text
    assert not _live(op, tokens)
    op.refused(op.refresh(app, tokens["refresh_token"]), 400, "invalid_grant")


def test_a_session_signed_out_ends_the_grants_made_in_it(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    laptop, phone = op.session(ann), op.session(ann)
    from_laptop = op.redeem(app, op.code(app, ann, session_id=laptop))
    from_phone = op.redeem(app, op.code(app, ann, session_id=phone))
    signed_out = op.http.delete(f"/api/me/sessions/{laptop}", headers=ann.headers)
    assert signed_out.status_code == 204, signed_out.text
    assert not _live(op, from_laptop)
    op.refused(op.refresh(app, from_laptop["refresh_token"]), 400, "invalid_grant")
    assert _live(op, from_phone)
    assert op.refresh(app, from_phone["refresh_token"]).status_code == 200


def test_the_sweep_deletes_grants_and_codes_a_day_past_their_end(
        held_housekeeping: None, op: Provider, make: Factory, settings: Settings) -> None:
    ann = make.user()
    app = op.client()
    live = op.redeem(app, op.code(app, ann))
    revoked = op.redeem(app, op.code(app, ann))
    op.http.post("/oauth/revoke", data={"token": revoked["refresh_token"]}, headers=app.auth)
    pending = op.code(app, ann)
    now, session = datetime.now(UTC), op.session(ann)
    old, recent = uuid.uuid4(), uuid.uuid4()
    with make.engine.begin() as conn:
        for grant_id, ended in ((old, now - timedelta(days=2)), (recent, now - timedelta(
                hours=2))):
            conn.execute(insert(oauth_grants).values(
                id=grant_id, client_id=app.id, user_id=ann.id, scopes=["offline_access"],
                workspace_id=None, session_id=session, auth_time=now - timedelta(days=40),
                created_at=now - timedelta(days=40), expires_at=ended, revoked_at=None))
            conn.execute(insert(oauth_refresh_tokens).values(
                token_hash=hash_token(new_token()), grant_id=grant_id,
                created_at=now - timedelta(days=40), expires_at=ended, used_at=None))
        conn.execute(insert(oauth_codes).values(
            code_hash=hash_token(new_token()), client_id=app.id, user_id=ann.id,
            redirect_uri="https://app.example.com/callback", scopes=["openid"], nonce=None,
            code_challenge=None, workspace_id=None, session_id=session,
            auth_time=now - timedelta(days=2), created_at=now - timedelta(days=2),
            expires_at=now - timedelta(days=2) + timedelta(seconds=60), used_at=None,
            grant_id=None))
    assert op.api.db.sql("SELECT count(*) FROM oauth_codes") == [(4,)]
    swept = _sweep(settings)
    assert swept.grants == 1 and swept.tokens == 1
    assert op.api.db.sql(f"SELECT count(*) FROM oauth_grants WHERE id = {op.sql_id(old)}"
                         ) == [(0,)]
    assert op.api.db.sql("SELECT count(*) FROM oauth_refresh_tokens WHERE grant_id = "
                         f"{op.sql_id(old)}") == [(0,)]  # with their grant
    assert op.api.db.sql("SELECT count(*) FROM oauth_grants") == [(3,)]  # revoked one kept
    assert op.api.db.sql("SELECT count(*) FROM oauth_codes") == [(3,)]
    assert _sweep(settings).grants == 0
    assert _live(op, live) and op.refresh(app, live["refresh_token"]).status_code == 200
    assert op.redeem(app, pending)["access_token"]
