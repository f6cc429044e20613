# ruff: noqa: RUF001, RUF003
"""The migration that adds users' confusable skeleton, on a database that holds accounts,
look-alikes among them (registered before the rule)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conftest import Cli
from workspaces.db import create_sync_engine, parse_url

BEFORE = "20261130175952_outbox_status_logged"
SKELETON = "20261130190000_users_email_skeleton"

USERS = sa.table("users", sa.column("id", sa.Uuid()), sa.column("email", sa.String()),
                 sa.column("name", sa.String()), sa.column("password_hash", sa.String()),
                 sa.column("created_at", sa.DateTime(timezone=True)),
                 sa.column("updated_at", sa.DateTime(timezone=True)))


def _add_users(cli: Cli, emails: list[str]) -> None:
    engine = create_sync_engine(parse_url(cli.url))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(USERS), [
                {"id": uuid.uuid4(), "email": email, "name": "n", "password_hash": "x",
                 "created_at": start + timedelta(minutes=n),
                 "updated_at": start + timedelta(minutes=n)}
                for n, email in enumerate(emails)])
    finally:
        engine.dispose()


def test_existing_accounts_get_skeletons_and_look_alikes_are_grandfathered(cli: Cli) -> None:
    assert cli("db", "deploy", "--to", BEFORE).exit_code == 0
    _add_users(cli, [
        "coco@example.com",  # the oldest of three look-alikes keeps the skeleton
        "сосо@example.com",  # all Cyrillic: the same skeleton, younger
        "ｂｏｂ@example.com",  # fullwidth, stored before NFKC: becomes bob@ (no one has it)
        "bоb@example.com",  # Cyrillic о: mixed scripts, left as it is, no skeleton
        "ｃｏｃｏ@example.com",  # fullwidth coco: its NFKC form is taken, so it stays
        "ann@example.com",
    ])
    assert cli("db", "deploy").exit_code == 0
    rows = {str(e): s for e, s in cli.sql("SELECT email, email_skeleton FROM users")}
    assert set(rows) == {"coco@example.com", "сосо@example.com", "bob@example.com",
                         "bоb@example.com", "ｃｏｃｏ@example.com", "ann@example.com"}
    assert rows["coco@example.com"] and rows["bob@example.com"] and rows["ann@example.com"]
    assert rows["сосо@example.com"] is None and rows["bоb@example.com"] is None
    assert rows["ｃｏｃｏ@example.com"] is None
    assert cli("db", "verify").exit_code == 0
    assert cli("db", "rollback", SKELETON, "--yes").exit_code == 0
    assert cli("db", "status").exit_code == 2  # pending again, and no drift
    assert cli("db", "deploy").exit_code == 0  # and forward again
