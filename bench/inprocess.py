"""CPU per request, in-process: the application called as an ASGI app in a loop, no HTTP.

    python -m bench.inprocess --database-url postgresql://.../wsbench_XXXX [--requests 1500]
                              [--rounds 5] [--only read,read-jwt,preview]

Against a database the benchmark seeded and kept (`python -m bench --keep ...`). Each request
goes through every layer of the application (middleware, routing, dependencies, handler,
SQLAlchemy or the driver, the access line) and its database round trips; only uvicorn's HTTP
parsing and the socket writes are left out. The figure is the process's CPU time per request
(`time.process_time`), the lowest of `--rounds` rounds: CPU time barely moves with what else
the machine does, where wrk's requests per second on a shared 2-core machine move by 10 to 20%,
so it shows what one change to the request path costs or saves (docs/benchmarks.md, issue 22).
To compare two trees, run it with `PYTHONPATH=<tree>/src` for each.
"""

from __future__ import annotations

import argparse
import logging.config
import os
import time
from typing import Any

from bench import seed

PATHS = {"read": "/api/workspaces/team/members", "read-jwt": "/api/workspaces/team/members",
         "preview": f"/api/invites/{seed.PREVIEW_TOKEN}"}


async def _measure(app: Any, path: str, authorization: str, requests: int, rounds: int
                   ) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"bench.example"), (b"user-agent", b"bench"),
                         (b"authorization", authorization.encode())]}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(200):  # warm: compiled statements, caches, the key set
        await app(dict(scope), receive, send)
    seen: list[float] = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        seen.append((time.process_time() - started) / requests)
    if statuses != {200}:
        raise SystemExit(f"{path} answered {sorted(statuses)}, not only 200")
    return min(seen)


async def _run(options: argparse.Namespace) -> None:
    from workspaces import logs
    from workspaces.app import create_app
    from workspaces.settings import get_settings

    settings = get_settings()
    try:
        logging.config.dictConfig(logs.config(settings.log_level, settings.log_format))
    except TypeError:  # a tree from before issue 22, where config took the settings
        logging.config.dictConfig(logs.config(settings))  # type: ignore[call-arg, arg-type]
    with open(os.devnull, "w") as nowhere:
        for handler in logging.getLogger().handlers:  # the access lines written, as a
            if isinstance(handler, logging.StreamHandler):  # server writes them, to nowhere
                handler.setStream(nowhere)
        app = create_app()
        async with app.router.lifespan_context(app):
            token = options.token
            for name in options.only.split(","):
                authorization = f"Bearer {token if name == 'read-jwt' else seed.OWNER_TOKEN}"
                cpu = await _measure(app, PATHS[name], authorization, options.requests,
                                     options.rounds)
                print(f"{name}: {cpu * 1e6:,.0f} us CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="read,read-jwt,preview")
    options = parser.parse_args()
    from bench.__main__ import SETTINGS

    os.environ.update({name.upper(): str(value) for name, value in SETTINGS.items()})
    os.environ.update(DATABASE_URL=options.database_url, SMTP_URL="smtp://127.0.0.1:9",
                      LOG_LEVEL="INFO")
    from workspaces.settings import get_settings

    settings = get_settings()
    options.token = seed.access_token(settings.database_url, settings)  # runs its own loop
    import uvloop

    uvloop.run(_run(options))


if __name__ == "__main__":
    main()
