"""A read (GET) takes no write lock on SQLite: it answers while another connection writes."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.api.conftest import Api
from tests.conftest import Cli
from workspaces.app import create_app
from workspaces.settings import Settings


@pytest.mark.parametrize("app_db", ["sqlite"], indirect=True)  # PostgreSQL readers never wait
def test_a_get_answers_while_another_connection_holds_the_write_lock(
        settings: Settings) -> None:
    url = make_url(settings.database_url)
    with TestClient(create_app(settings)) as client:
        api = Api(client, Cli(settings.database_url, {}))
        ann = api.signup("ann@example.com")
        slug = api.workspace(ann)
        writer = sqlite3.connect(str(url.database), isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # a deploy, a CLI command, a long write
            assert client.get("/api/me", headers=ann).status_code == 200
            assert client.get(f"/api/workspaces/{slug}/members", headers=ann).status_code == 200
        finally:
            writer.execute("ROLLBACK")
            writer.close()
