"""Deleting an account never leaves a workspace without an owner, also under concurrency."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlalchemy import delete, select

from tests.api.conftest import Api
from tests.api.test_members import _join, _me, _patch
from tests.conftest import at_once
from workspaces.db import create_sync_engine, parse_url
from workspaces.models import members, workspaces


def _co_owners(api: Api, slugs: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Ann and Bob, owners together of every workspace in `slugs` (Ann creates them)."""
    ann = api.signup("ann@example.com")
    bob: dict[str, str] = {}
    for slug_name in slugs:
        slug = api.workspace(ann, slug_name)
        if not bob:
            bob, _ = _join(api, ann, slug, "bob@example.com", "owner")
        else:
            token = api.invite(ann, slug, "bob@example.com", "owner")["accept_url"].rsplit(
                "/", 1)[1]
            assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200
    return ann, bob


def _owners_left(api: Api) -> list[int]:
    rows = api.db.sql("SELECT w.slug, count(m.user_id) FROM workspaces w LEFT JOIN "
                      "workspace_members m ON m.workspace_id = w.id AND m.role = 'owner' "
                      "GROUP BY w.slug ORDER BY w.slug")
    return [int(str(count)) for _, count in rows]


def test_the_only_owner_cannot_delete_their_account(api: Api) -> None:
    ann = api.signup("ann@example.com")
    api.workspace(ann, "Solo")
    message = api.error(api.client.delete("/api/me", headers=ann), 409, "last_owner")
    assert "solo" in message
    assert api.client.get("/api/me", headers=ann).status_code == 200


def test_two_co_owners_deleting_their_accounts_at_once_leave_one(api: Api) -> None:
    """Found by attacking: on PostgreSQL both got 204 in 7 of 8 trials (no owner left)."""
    for trial in range(4):
        ann, bob = _co_owners(api, (f"Shared {trial} a", f"Shared {trial} b"))
        codes = sorted(r.status_code for r in at_once(
            lambda a=ann: api.client.delete("/api/me", headers=a),
            lambda b=bob: api.client.delete("/api/me", headers=b)))
        assert codes == [204, 409], codes
        assert _owners_left(api) == [1, 1], trial
        api.db.sql("DELETE FROM users")
        api.db.sql("DELETE FROM workspaces")


def test_deleting_while_the_other_owner_leaves_keeps_an_owner(api: Api) -> None:
    for trial in range(4):
        ann, bob = _co_owners(api, (f"Left {trial}",))
        slug = f"left-{trial}"
        ann_id = _me(api, ann)
        results = at_once(
            lambda b=bob: api.client.delete("/api/me", headers=b),
            lambda a=ann, path=f"/api/workspaces/{slug}/members/{ann_id}":
                api.client.delete(path, headers=a))
        assert sorted(r.status_code for r in results) == [204, 409], [r.text for r in results]
        assert _owners_left(api) == [1]
        api.db.sql("DELETE FROM users")
        api.db.sql("DELETE FROM workspaces")


def test_deletion_waits_for_a_membership_change_in_progress(api: Api) -> None:
    """Deterministic: while another transaction holds the workspace's membership lock and
    removes Ann's ownership, Bob's deletion waits for it, then sees no other owner."""
    ann, bob = _co_owners(api, ("Held",))
    ann_id = uuid.UUID(_me(api, ann))
    engine = create_sync_engine(parse_url(api.db.url), sqlite_immediate=True)
    try:
        with engine.connect() as conn:
            change = conn.begin()
            held = select(workspaces.c.id).where(workspaces.c.slug == "held")
            if api.db.is_pg:  # the lock membership changes take (SQLite: the write lock)
                held = held.with_for_update(key_share=True)
            workspace_id = conn.execute(held).scalar_one()
            conn.execute(delete(members).where(members.c.workspace_id == workspace_id,
                                               members.c.user_id == ann_id))
            answers: list[Any] = []
            request = threading.Thread(target=lambda: answers.append(
                api.client.delete("/api/me", headers=bob)))
            request.start()
            request.join(1.5)
            assert request.is_alive(), f"the deletion did not wait: {answers}"
            change.commit()
            request.join(30)
        api.error(answers[0], 409, "last_owner")
    finally:
        engine.dispose()
    assert _owners_left(api) == [1]
    assert _patch(api, bob, "held", str(ann_id), "member").status_code == 404  # Ann is gone
