"""A failure no handler takes: answered in the error shape with the request's id, logged once
with it. (The rest of the request log is tested against a real server: tests/test_logging.py.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.api.conftest import Api


def test_an_unhandled_error_is_a_500_in_the_error_shape_with_the_request_id(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    api.client.app.router.add_api_route("/api/boom", boom)  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="workspaces")
    response = api.client.get("/api/boom", headers={"X-Request-ID": "req-boom"})
    assert api.error(response, 500, "internal_error") == (
        "Something went wrong on our side; it has been logged.")
    assert response.headers["X-Request-ID"] == "req-boom"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.json()["error"]["request_id"] == "req-boom"
    (failed,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed.getMessage() == "unhandled error on GET /api/boom"
    assert failed.exc_info and "a bug" in str(failed.exc_info[1])
    (access,) = [r for r in caplog.records if r.name == "workspaces.access"]
    assert access.__dict__["status"] == 500 and access.__dict__["path"] == "/api/boom"


def test_a_path_cannot_forge_or_split_an_access_line(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Control characters, quotes and line breaks in a path reach the log percent-encoded, as
    uvicorn's own access log wrote them."""
    caplog.set_level(logging.INFO, logger="workspaces")
    api.client.get('/x%1b[31mRED%1b[0m%22%20200%200.1ms%C2%85%0Aforged?a="b"%0d')
    (access,) = [r for r in caplog.records if r.name == "workspaces.access"]
    line = access.getMessage()
    assert "\x1b" not in line and "\x85" not in line and "\n" not in line and "\r" not in line
    assert line.count('"') == 2, line  # only the quotes around the request itself
    assert access.__dict__["path"] == "/x%1B%5B31mRED%1B%5B0m%22%20200%200.1ms%C2%85%0Aforged"
    assert access.__dict__["status"] == 404


def test_a_query_of_bytes_that_are_no_utf_8_is_answered_and_logged_percent_encoded(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """The access line reads the raw query bytes: what is no UTF-8 is shown byte by byte
    (reading it as text raised before the request reached the application)."""
    caplog.set_level(logging.INFO, logger="workspaces")
    app: Any = api.client.app
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "root_path": "",
             "query_string": b"q=caf\xc3\xa9&bad=\xff\xfe", "headers": [(b"host", b"testserver")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert api.client.portal is not None
    api.client.portal.call(app, scope, receive, send)
    assert sent[0]["status"] == 200
    (access,) = [r for r in caplog.records if r.name == "workspaces.access"]
    assert access.__dict__["query"] == "q=caf%C3%A9&bad=%FF%FE"
