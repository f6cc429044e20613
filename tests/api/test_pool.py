"""When every database connection of a worker stays busy, requests get a 503, not a 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tests.conftest import Cli
from workspaces.app import create_app
from workspaces.settings import Settings


def test_a_request_finding_no_free_connection_gets_503_server_busy(settings: Settings) -> None:
    tiny = settings.model_copy(update={"database_pool_size": 1, "database_pool_timeout": 0.5})
    with TestClient(create_app(tiny)) as client:
        api = Api(client, Cli(settings.database_url, {}))
        ann = api.signup("ann@example.com")
        engine: Any = client.app.state.engine  # type: ignore[attr-defined]
        assert client.portal is not None

        async def take() -> Any:
            return await engine.connect()

        held = client.portal.call(take)  # the pool's only connection, held by someone else
        try:
            response = client.get("/api/me", headers=ann)
            assert api.error(response, 503, "server_busy").startswith("The server is too busy")
            assert response.headers["Retry-After"] == "1"
        finally:
            client.portal.call(held.close)
        assert client.get("/api/me", headers=ann).status_code == 200
