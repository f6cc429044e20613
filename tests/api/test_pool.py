"""When every database connection of a worker stays busy, requests get a 503, not a 500."""

from __future__ import annotations

from collections.abc import MutableMapping
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


def test_a_form_still_arriving_holds_no_connection_slot(
        held_email_loop: None, held_webhook_loop: None, held_housekeeping: None,
        settings: Settings) -> None:
    """A page's POST whose body has not arrived (a slow or stalled client) waits for it before
    it takes a connection slot, also where only a dependency reads the body (the CSRF check of
    /verify/{token}): stalled bodies cannot take every slot and turn the rest away with 503.
    The app's background loops are held: their polls and the sweep at start take a pooled
    connection of their own now and then, which the count below would catch (it did, twice in
    one CI run)."""
    import asyncio

    app = create_app(settings)

    async def stalled_posts() -> tuple[int, int, int]:
        async with app.router.lifespan_context(app):
            slots: asyncio.Semaphore = app.state.db_slots
            free = slots._value  # what the requests' queue has left
            arriving = asyncio.Event()
            reading = 0

            async def receive() -> dict[str, Any]:
                nonlocal reading
                reading += 1
                await arriving.wait()  # the body never comes
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(_message: MutableMapping[str, Any]) -> None:
                pass

            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "scheme": "http", "path": "/verify/x",
                     "raw_path": b"/verify/x", "query_string": b"", "root_path": "",
                     "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
                     "headers": [(b"host", b"testserver"), (b"content-length", b"100"),
                                 (b"content-type", b"application/x-www-form-urlencoded")]}
            posts = [asyncio.create_task(app(dict(scope), receive, send)) for _ in range(free)]
            # Each request is waiting for its body: the slots they hold now stay held.
            deadline = asyncio.get_running_loop().time() + 30  # a hang guard, not a target
            while reading < free:
                assert asyncio.get_running_loop().time() < deadline, (reading, free)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # anything a request does after its read has run
            pool = app.state.engine.sync_engine.pool
            left, checked_out = slots._value, pool.checkedout()
            for post in posts:
                post.cancel()
            await asyncio.gather(*posts, return_exceptions=True)
            return free, left, checked_out

    free, left, checked_out = asyncio.run(stalled_posts())
    assert free > 1
    assert (left, checked_out) == (free, 0)
