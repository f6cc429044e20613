"""A webhook receiver for bench/webhooks.py, served by uvicorn like the application: it answers
every POST 204 at once and keeps, per message, its webhook-id, its type, when it arrived and
the seconds from the event's `occurred_at` to its arrival; `GET /stats` returns them.

Not a verifier (the tests and the drill verify every message with `standardwebhooks`): here
the receiver must cost as little as possible, as a production receiver that queues would.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

Scope = dict[str, Any]

_arrivals: list[tuple[str, str, float, float]] = []  # (webhook-id, type, arrival, latency)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        answer = json.dumps({"received": len(_arrivals), "messages": _arrivals}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
        return
    now = time.time()
    headers = dict(scope["headers"])
    event = json.loads(body)
    occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()
    _arrivals.append((headers[b"webhook-id"].decode(), event["type"], now, now - occurred))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
