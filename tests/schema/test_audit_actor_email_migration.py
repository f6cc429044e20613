"""The migration that keeps the actor's address with each audit event, on a database holding
events by a member, by a former member who joined through an invite and moved, and by a former
member who created the workspace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.conftest import Cli
from workspaces.db import create_sync_engine, parse_url

BEFORE = "20261130232952_verified_addresses_and_account_events"
ACTOR_EMAIL = "20261206012805_audit_events_keep_the_actor_s_address"


def _type(column: str) -> Any:
    if column == "id" or (column.endswith("_id") and column != "target_id"):
        return sa.Uuid()
    if column.endswith("_at"):
        return sa.DateTime(timezone=True)
    return sa.JSON() if column == "detail" else sa.String()


def _table(name: str, *columns: str) -> Any:
    return sa.table(name, *(sa.column(c, _type(c)) for c in columns))


def test_existing_events_keep_only_addresses_the_workspace_knew(cli: Cli) -> None:
    assert cli("db", "deploy", "--to", BEFORE).exit_code == 0
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ann, bob, carl, ws = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    users = _table("users", "id", "email", "name", "password_hash", "created_at", "updated_at")
    events = _table("audit_events", "id", "workspace_id", "actor_user_id", "action",
                    "target_type", "target_id", "target_email", "detail", "created_at")
    engine = create_sync_engine(parse_url(cli.url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(users), [
                {"id": who, "email": email, "name": "n", "password_hash": "x",
                 "created_at": start, "updated_at": start}
                for who, email in ((ann, "ann@example.com"), (bob, "bob@later.example"),
                                   (carl, "carl@later.example"))])
            conn.execute(sa.insert(_table("workspaces", "id", "name", "slug", "created_at")),
                         [{"id": ws, "name": "Acme", "slug": "acme", "created_at": start}])
            conn.execute(sa.insert(_table("workspace_members", "workspace_id", "user_id",
                                          "role", "created_at")),
                         [{"workspace_id": ws, "user_id": ann, "role": "owner",
                           "created_at": start}])
            conn.execute(sa.insert(events), [
                {"id": uuid.uuid4(), "workspace_id": ws, "actor_user_id": actor,
                 "action": action, "target_type": "invite", "target_id": "x",
                 "target_email": target, "detail": {},
                 "created_at": start + timedelta(minutes=n)}
                for n, (actor, action, target) in enumerate((
                    (carl, "created", "bob@example.com"),  # carl created Acme, then left
                    (bob, "accepted", "bob@example.com"),  # bob joined with his old address
                    (bob, "left", "bob@example.com"),
                    (ann, "removed", "x@example.com"),
                    (None, "declined", "y@example.com")))])
    finally:
        engine.dispose()
    assert cli("db", "deploy").exit_code == 0
    kept = {action: actor for action, actor in
            cli.sql("SELECT action, actor_email FROM audit_events")}
    assert kept == {"created": None,  # what carl's address was then, nobody knows
                    "accepted": "bob@example.com", "left": "bob@example.com",  # not @later
                    "removed": "ann@example.com", "declined": None}
    assert cli("db", "verify").exit_code == 0
    assert cli("db", "rollback", ACTOR_EMAIL, "--yes").exit_code == 0
    assert cli("db", "deploy").exit_code == 0
