"""No event without its change, no change without its event: a fault injected between the
write and the commit takes both, through the real API, on both databases.

Two faults, each a trigger the database itself runs: one that fails the commit after the change
and its event were written (the event's row fires it; the check is deferred to COMMIT), and one
that fails the event's write itself. Either way the client gets a clean error and nothing of
the change is left: not its row, not its event, audit line or email.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import Api

# On PostgreSQL a function raising, run by a trigger at once or (a constraint trigger) at
# COMMIT. On SQLite a trigger's RAISE for the write; for the commit, a row whose deferred
# foreign key is checked at COMMIT and fails.
FAULTS: dict[tuple[str, str], list[str]] = {
    ("postgresql", "write"): [
        "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        "CREATE TRIGGER fault BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION fault()",
    ],
    ("postgresql", "commit"): [
        "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        "CREATE CONSTRAINT TRIGGER fault AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION fault()",
    ],
    ("sqlite", "write"): [
        "CREATE TRIGGER fault BEFORE INSERT ON events BEGIN "
        "SELECT RAISE(ABORT, 'injected fault'); END",
    ],
    ("sqlite", "commit"): [
        "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE fault_child (parent INTEGER REFERENCES fault_parent (id) "
        "DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER fault AFTER INSERT ON events BEGIN "
        "INSERT INTO fault_child VALUES (1); END",
    ],
}
REMOVE = {
    "postgresql": ["DROP TRIGGER fault ON events", "DROP FUNCTION fault()"],
    "sqlite": ["DROP TRIGGER fault"],
}


def _inject(api: Api, when: str) -> None:
    kind = "postgresql" if api.db.is_pg else "sqlite"
    for statement in FAULTS[(kind, when)]:
        api.db.sql(statement)


def _remove(api: Api) -> None:
    for statement in REMOVE["postgresql" if api.db.is_pg else "sqlite"]:
        api.db.sql(statement)


def _records(api: Api) -> dict[str, Any]:
    """Everything a change and its telling write, counted."""
    return {table: api.db.sql(f"SELECT count(*) FROM {table}")[0][0]
            for table in ("events", "audit_events", "email_outbox", "workspace_invites")}


@pytest.fixture
def acme(api: Api) -> tuple[dict[str, str], str, dict[str, str]]:
    """Ann owns Acme; Bob is a member of it."""
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    bob = api.signup("bob@example.com")
    token = api.invite_token(ann, slug, "bob@example.com")
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200
    return ann, slug, bob


def _invite(api: Api, ann: dict[str, str], slug: str) -> Any:
    return api.client.post(f"/api/workspaces/{slug}/invites",
                           json={"email": "cat@example.com", "role": "member"}, headers=ann)


def _promote(api: Api, ann: dict[str, str], slug: str) -> Any:
    members = api.client.get(f"/api/workspaces/{slug}/members", headers=ann).json()
    bob = next(m for m in members if m["email"] == "bob@example.com")
    return api.client.patch(f"/api/workspaces/{slug}/members/{bob['user_id']}",
                            json={"role": "admin"}, headers=ann)


def _roles(api: Api, ann: dict[str, str], slug: str) -> dict[str, str]:
    members = api.client.get(f"/api/workspaces/{slug}/members", headers=ann).json()
    return {m["email"]: m["role"] for m in members}


CHANGES: dict[str, Callable[[Api, dict[str, str], str], Any]] = {
    "invite": _invite, "role change": _promote}


@pytest.mark.parametrize("when", ["write", "commit"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_fault_between_the_write_and_the_commit_leaves_neither_change_nor_event(
        api: Api, acme: tuple[dict[str, str], str, dict[str, str]], change: str,
        when: str) -> None:
    ann, slug, _ = acme
    before, roles = _records(api), _roles(api, ann, slug)
    _inject(api, when)
    try:
        failed = CHANGES[change](api, ann, slug)
        api.error(failed, 500, "internal_error")
        assert "injected" not in failed.text  # the database's words stay in the log
    finally:
        _remove(api)
    assert _records(api) == before
    assert _roles(api, ann, slug) == roles

    # The same request without the fault: the change and its records, all at once.
    done = CHANGES[change](api, ann, slug)
    assert done.status_code in (200, 201), done.text
    after = _records(api)
    assert after["events"] == before["events"] + 1
    assert after["audit_events"] == before["audit_events"] + 1
    told = api.db.sql("SELECT type FROM events ORDER BY position DESC LIMIT 1")[0][0]
    assert told == {"invite": "invite.created", "role change": "member.role_changed"}[change]
    if change == "role change":
        assert _roles(api, ann, slug)["bob@example.com"] == "admin"


def test_the_commit_fault_fires_only_after_the_event_was_written(api: Api) -> None:
    """The commit fault is armed by the event's own row: the event was written in the
    transaction, then the commit failed. A write that tells nothing commits as usual."""
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    _inject(api, "commit")
    try:
        signed_in = api.client.post("/api/auth/login", json={
            "email": "ann@example.com", "password": "correct horse battery"})
        assert signed_in.status_code == 200, signed_in.text
        api.error(api.client.patch(f"/api/workspaces/{slug}", json={"name": "Acme 2"},
                                   headers=ann), 500, "internal_error")
    finally:
        _remove(api)
    assert api.client.get(f"/api/workspaces/{slug}", headers=ann).json()["name"] == "Acme"
    assert api.db.sql("SELECT count(*) FROM events WHERE type = 'workspace.updated'") == [(0,)]
    token = signed_in.json()["token"]
    assert api.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
