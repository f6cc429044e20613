"""A table dropped under a running server: clear 503s, one log line, recovery after repair
(and one line saying so)."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Api
from tests.conftest import INVITES


def test_a_dropped_table_gives_503_naming_it_then_recovers_after_repair(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workspaces.guard")
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    assert api.client.get("/readyz").status_code == 200
    assert "recovered" not in caplog.text  # nothing was missing

    api.db.sql("DROP TABLE workspace_invites" + (" CASCADE" if api.db.is_pg else ""))
    for _ in range(3):
        response = api.client.post(f"/api/workspaces/{slug}/invites",
                                   json={"email": "bob@example.com"}, headers=owner)
        message = api.error(response, 503, "schema_out_of_date")
        assert "workspace_invites" in message and INVITES in message
        assert "`workspaces db repair`" in message  # the fix `db status` prints first
        assert response.json()["error"]["migration"] == INVITES
    assert caplog.text.count("table workspace_invites is missing") == 1  # once, not per request
    assert api.client.get(f"/api/workspaces/{slug}/members", headers=owner).status_code == 200

    ready = api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "schema_out_of_date"
    assert "workspace_invites" in ready.json()["error"]["message"]

    assert api.db("db", "repair").exit_code == 0
    assert api.client.get("/readyz").status_code == 200
    assert api.client.get("/readyz").status_code == 200
    (unready,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert unready.getMessage() == ("not ready: /readyz answers 503: the database lacks table "
                                    "workspace_invites; fix: workspaces db repair")
    (recovered,) = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert recovered.levelno == logging.INFO
    assert recovered.getMessage().startswith(
        "recovered: /readyz answers 200 again (before: the database lacks table "
        "workspace_invites; table workspace_invites is missing (migration ")
    created = api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "bob@example.com"}, headers=owner)
    assert created.status_code == 201, created.text
