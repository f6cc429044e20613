"""The migration that lets webhook endpoints remember whether an operator set their URL, on a
database holding the instance's endpoints (made by operators before service clients could) and
workspaces' endpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tests.conftest import Cli
from workspaces.db import create_sync_engine, parse_url

BEFORE = "20261206071147_oauth_and_signing_keys"
OPERATOR_NETWORKS = "20261206081559_webhook_endpoints_operator_networks"


def _table(name: str, *columns: str) -> Any:
    def kind(column: str) -> Any:
        if column == "id" or column.endswith("_id"):
            return sa.Uuid()
        return sa.DateTime(timezone=True) if column.endswith("_at") else None
    return sa.table(name, *(sa.column(c, kind(c)) for c in columns))


def test_the_instances_endpoints_keep_the_operators_networks_and_workspaces_do_not(
        cli: Cli) -> None:
    assert cli("db", "deploy", "--to", BEFORE).exit_code == 0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ws = uuid.uuid4()
    endpoints = _table("webhook_endpoints", "id", "workspace_id", "url", "description",
                       "sealed_secret", "enabled", "created_at", "updated_at")
    engine = create_sync_engine(parse_url(cli.url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(_table("workspaces", "id", "name", "slug", "created_at"))
                         .values(id=ws, name="Acme", slug="acme", created_at=now))
            conn.execute(sa.insert(endpoints), [
                {"id": uuid.uuid4(), "workspace_id": where, "url": url, "description": "",
                 "sealed_secret": "x", "enabled": True, "created_at": now, "updated_at": now}
                for where, url in ((None, "http://10.0.0.5/hook"),
                                   (ws, "https://hooks.example.com/acme"))])
    finally:
        engine.dispose()
    assert cli("db", "deploy").exit_code == 0
    assert sorted((str(url), bool(kept)) for url, kept in cli.sql(
        "SELECT url, operator_networks FROM webhook_endpoints")) == [
        ("http://10.0.0.5/hook", True), ("https://hooks.example.com/acme", False)]
    assert cli("db", "verify").exit_code == 0
    assert cli("db", "rollback", OPERATOR_NETWORKS, "--yes").exit_code == 0
    assert cli("db", "deploy").exit_code == 0
