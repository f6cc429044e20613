"""Plain ASGI middleware: the request id, access line, metrics and security headers of every
request, and a cap on request bodies.

Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs the
application in a task group (an exception raised while reading the body reaches FastAPI wrapped
in an ExceptionGroup) and costs a task per request.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote, quote_from_bytes

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workspaces import logs
from workspaces.metrics import process
from workspaces.web.deps import client_of
from workspaces.web.errors import internal_error, respond
from workspaces.web.metrics import route_of

access_log = logging.getLogger("workspaces.access")
log = logging.getLogger("workspaces.web")



def content_security_policy(*, form_targets: tuple[str, ...] = ()) -> str:
    """Same origin only, no inline script, never framed. `form_targets`: the sources a form of
    the page may also end up at (browsers apply form-action to the redirect a POST answers with:
    the consent page's Allow goes back to the client)."""
    form_action = " ".join(("'self'", *form_targets))
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; "
            "object-src 'none'")


CSP = content_security_policy()
HSTS = "max-age=31536000"


class RequestLog:
    """Every request gets an id, then one access line and its count in /metrics (by route
    template, method and status, with its latency) once it is answered.

    The id is the request's X-Request-ID when well formed (logs.WELL_FORMED_ID), else a new one;
    every log line written while the request is served carries it (logs.REQUEST_ID), and so do
    the response (X-Request-ID) and its error body (`error.request_id`). The access line goes
    to `workspaces.access`: client address (as the limits count it: TRUSTED_PROXIES), method,
    path with tokens redacted, status, duration. It replaces uvicorn's access log, which knows
    neither the id nor the client behind a proxy.

    Outermost, so that it sees what every other layer answers. An exception no handler took is
    logged here with the request's id and answered 500 `internal_error` in the usual shape.

    Every response, that 500 included, also gets the security headers a route did not set
    itself: no referrer, no sniffing, no framing, and a same-origin-only CSP (no inline script).
    With `hsts` (the site is served over https), browsers are told to use https only for a
    year; not `includeSubDomains`: other services may share the parent domain and must not be
    forced onto https by us. (One layer for both: each layer costs every request a coroutine
    and a hop of every message.)
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        defaults = [(b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CSP.encode())]
        if hsts:
            defaults.append((b"strict-transport-security", HSTS.encode()))
        self.defaults = tuple(defaults)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logs.new_request_id(_header(scope, b"x-request-id"))
        bound = logs.REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 0
        id_header = (b"x-request-id", request_id.encode())

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = self._headers(message, id_header)
            await send(message)

        method: str = scope["method"]
        # As uvicorn's access log shows them: percent-encoded, so that no control character,
        # quote or line break a client put in the path can forge or split a log line.
        path = logs.redact(quote(scope["path"]))
        raw_query: bytes = scope.get("query_string", b"")
        query = logs.redact(quote_from_bytes(raw_query, safe="/=&%+:,;@")) if raw_query else ""
        try:
            await self.app(scope, receive, with_id)
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            if status:  # the response has begun: only the server can end it (logged above,
                raise   # with this request's id, which uvicorn's own line would not carry)
            await respond(Request(scope), internal_error())(scope, receive, with_id)
        finally:
            seconds = time.perf_counter() - started
            if status:  # not a request cancelled before its answer (the client left, shutdown)
                process.observe_request(route_of(scope), method, status, seconds)
            client = client_of(scope)
            duration = round(seconds * 1000, 1)
            # Made of redacted parts only (the path and query above; the client is an address
            # or "unknown", the method an HTTP token): logs.Redact need not read it again.
            # The record is made here and handed to the logger's handlers (`makeRecord` and
            # `handle`, what `info` does) without `info`'s search of the stack for its caller,
            # which every access line would name the same way: 1-2% of a short request.
            if access_log.isEnabledFor(logging.INFO):
                access_log.handle(access_log.makeRecord(
                    access_log.name, logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d %.1fms',
                    (client, method, f"{path}?{query}" if query else path,
                     scope.get("http_version", "1.1"), status, duration), None,
                    extra={"method": method, "path": path, "status": status,
                           "duration_ms": duration, "client": client, logs.REDACTED_PARTS: True}
                    | ({"query": query} if query else {})))
            logs.REQUEST_ID.reset(bound)


    def _headers(self, message: Message, id_header: tuple[bytes, bytes]
                 ) -> list[tuple[bytes, bytes]]:
        """The response's headers (a copy: never the response's own list) with the request's
        id (replacing any) and each security header it does not set itself."""
        headers = [pair for pair in message.get("headers", ())
                   if pair[0].lower() != b"x-request-id"]
        present = {name.lower() for name, _ in headers}
        headers.extend(pair for pair in self.defaults if pair[0] not in present)
        headers.append(id_header)
        return headers


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lower-case), as Starlette decodes it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, declared (Content-Length) or streamed (chunked).

    The error is raised from `receive`, inside the application, so the same handler as every
    other error renders it (the JSON error body for the API, a page for browsers); it is
    FastAPI's HTTPException because FastAPI turns any other exception raised while reading a
    body into a 400. (FastAPI's own `max_body_size` is not used: when Content-Length is over the
    limit, Starlette's middleware replaces whatever response the application sends with a plain
    text one, which would break the error contract.) An endpoint that never reads its body never
    pays for it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _last_header(scope, b"content-length")
        over = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            if over:
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def _last_header(scope: Scope, name: bytes) -> bytes:
    """The last value of the request header `name` (lower-case), as `dict(headers)` gives it."""
    found = b""
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return bytes(found)
