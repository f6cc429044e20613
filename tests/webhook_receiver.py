"""Real webhook receivers on 127.0.0.1 (pytest-httpserver), and endpoints written straight into
a database, for the delivery tests, the outage drill and anything else that needs them."""

from __future__ import annotations

import base64
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pytest_httpserver import HTTPServer
from sqlalchemy import insert
from werkzeug import Request, Response

from workspaces import clock
from workspaces.db import create_sync_engine, parse_url
from workspaces.models import webhook_endpoints
from workspaces.security import seal


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes them."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def ok(request: Request) -> Response:
    return Response("thanks", 200)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every request and answers with `answer` (200 by
    default; change it at any time). Several paths may share it: each endpoint its own."""

    server: HTTPServer
    answer: Callable[[Request], Response] = ok
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, port: int = 0, **options: Any) -> Receiver:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        receiver = cls(HTTPServer(host="127.0.0.1", port=port, threaded=True, **options))
        receiver.server.expect_request(re.compile(".*")).respond_with_handler(receiver._handle)
        receiver.server.start()
        return receiver

    def _handle(self, request: Request) -> Response:
        received = Received(request.path, {k.lower(): v for k, v in request.headers.items()},
                            request.get_data(), time.monotonic())
        with self.lock:
            self.got.append(received)
        return self.answer(request)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.server.ssl_context else "http"
        return f"{scheme}://{host}:{self.server.port}{path}"

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop()

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.got if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 60.0
                 ) -> list[Received]:
        """The requests received once there are `count` (to `path`), waiting for them."""
        deadline = time.monotonic() + timeout
        while len(found := self.received(path)) < count:
            assert time.monotonic() < deadline, f"{len(found)} of {count} requests received"
            time.sleep(0.02)
        return found


def add_endpoint(database_url: str, url: str, *, key: str, secret: str,
                 workspace_id: uuid.UUID | None = None, event_types: list[str] | None = None,
                 previous_secret: str | None = None, previous_until: datetime | None = None,
                 enabled: bool = True, failing_since: datetime | None = None) -> uuid.UUID:
    """A webhook endpoint as the service saves one (secrets sealed with `key`), of a workspace
    or of the instance (as an operator's command makes it: WEBHOOK_ALLOWED_NETWORKS applies)."""
    endpoint_id, now = uuid.uuid4(), clock.now()
    engine = create_sync_engine(parse_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(insert(webhook_endpoints).values(
                id=endpoint_id, workspace_id=workspace_id, url=url, description="",
                event_types=f",{','.join(event_types)}," if event_types else None,
                sealed_secret=seal(key, secret),
                sealed_previous_secret=seal(key, previous_secret) if previous_secret else None,
                previous_secret_until=previous_until, enabled=enabled,
                failing_since=failing_since, created_at=now, updated_at=now,
                operator_networks=workspace_id is None))
    finally:
        engine.dispose()
    return endpoint_id
