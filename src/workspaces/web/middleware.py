"""Plain ASGI middleware: a cap on request bodies and the security headers of every response.

Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs the
application in a task group (an exception raised while reading the body reaches FastAPI wrapped
in an ExceptionGroup) and costs a task per request.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HSTS = "max-age=31536000"


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
        declared = dict(scope["headers"]).get(b"content-length", b"")
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


class SecurityHeaders:
    """No referrer, no sniffing, no framing, and a same-origin-only CSP (no inline script).

    With `hsts` (the site is served over https), browsers are told to use https only for a
    year. Not `includeSubDomains`: other services may share the parent domain and must not be
    forced onto https by us.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", CSP)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, with_headers)
