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
    assert "schema recovered" not in caplog.text  # nothing was missing

    api.db.sql("DROP TABLE workspace_invites" + (" CASCADE" if api.db.is_pg else ""))
    for _ in range(3):
        response = api.client.post(f"/api/workspaces/{slug}/invites",
                                   json={"email": "bob@example.com"}, headers=owner)
        message = api.error(response, 503, "schema_out_of_date")
        assert "workspace_invites" in message and INVITES in message
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
    (recovered,) = [r for r in caplog.records if "schema recovered" in r.getMessage()]
    assert recovered.levelno == logging.INFO
    assert "(before: table workspace_invites is missing; migration " in recovered.getMessage()
    created = api.client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "bob@example.com"}, headers=owner)
    assert created.status_code == 201, created.text
