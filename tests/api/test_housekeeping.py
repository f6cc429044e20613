"""The hourly sweep deletes closed rate-limit windows and expired tokens, and nothing live."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from tests.api.conftest import Api
from workspaces import housekeeping
from workspaces.db import create_app_engine, create_sync_engine, parse_url
from workspaces.models import auth_tokens, rate_limit_counters
from workspaces.settings import Settings


def _sweep(settings: Settings) -> housekeeping.Swept:
    async def run() -> housekeeping.Swept:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1)
        try:
            return await housekeeping.sweep(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_sweep_deletes_old_windows_and_expired_tokens_only(
        held_housekeeping: None, api: Api, settings: Settings) -> None:
    ann = api.signup("ann@example.com")
    bob = api.signup("bob@example.com")
    slug = api.workspace(ann)
    api.invite(ann, slug, "cat@example.com")  # a live rate-limit window
    now = datetime.now(UTC)
    engine = create_sync_engine(parse_url(api.db.url), sqlite_immediate=True)
    try:
        with engine.begin() as conn:
            bob_id = conn.execute(select(auth_tokens.c.user_id).order_by(
                auth_tokens.c.created_at.desc()).limit(1)).scalar_one()
            conn.execute(insert(rate_limit_counters), [
                {"key": "invites:old", "window_start": now - timedelta(days=2), "count": 5},
                {"key": "invites:recent", "window_start": now - timedelta(hours=3), "count": 1},
            ])
            conn.execute(insert(auth_tokens).values(
                id=uuid.uuid4(), user_id=bob_id, token_hash="0" * 64, kind="api",
                created_at=now - timedelta(days=40), expires_at=now - timedelta(days=10)))
        assert _sweep(settings) == housekeeping.Swept(windows=1, tokens=1)
        with engine.begin() as conn:
            keys = set(conn.execute(select(rate_limit_counters.c.key)).scalars())
            assert "invites:old" not in keys and "invites:recent" in keys
            # and the live windows of the sign-ups, the workspace and the invite above
            # (each key with its ids and mailboxes left out: what kind of window it is)
            live = sorted(re.sub(r":[0-9a-f-]{32,36}(?=:|$)", "", key)
                          for key in keys - {"invites:recent"})
            assert live == ["invites", "invites:by", "invites:to", "invites:to:by",
                            "signup:client", "workspaces:client"], keys
            assert conn.execute(select(auth_tokens.c.token_hash)
                                .where(auth_tokens.c.token_hash == "0" * 64)).first() is None
            # A token that expired only an hour ago is kept a day longer.
            conn.execute(update(auth_tokens).where(auth_tokens.c.user_id == bob_id)
                         .values(expires_at=now - timedelta(hours=1)))
        assert _sweep(settings) == housekeeping.Swept(windows=0, tokens=0)
    finally:
        engine.dispose()
    assert api.client.get("/api/me", headers=ann).status_code == 200
    assert api.client.get("/api/me", headers=bob).status_code == 401
