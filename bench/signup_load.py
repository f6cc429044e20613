"""What sign-ups (Argon2, about 0.3 s of a core each) do to everyone else's requests.

    python -m bench.signup_load [--loops 6] [--seconds 10] [--database-url URL]

Starts `workspaces serve` (an SQLite file in a scratch folder unless --database-url is given),
then for `--seconds` runs `--loops` clients signing up new accounts back to back while one
client probes `/healthz` (no database) and `GET /api/me` (a database read) every 50 ms. Prints
the probes' latency (median, 95th percentile, max) with and without the sign-up load. Never run
as a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.__main__ import _free_port, _wait_ready


def _quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"median {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
            f"max {ordered[-1] * 1000:6.1f} ms  ({len(ordered)} probes)")


async def _probe(base: str, headers: dict[str, str], seconds: float
                 ) -> tuple[list[float], list[float]]:
    health: list[float] = []
    me: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for path, into in (("/healthz", health), ("/api/me", me)):
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                into.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
            await asyncio.sleep(0.05)
    return health, me


async def _sign_ups(base: str, seconds: float, counter: itertools.count[int]) -> int:
    done = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            response = await client.post("/api/auth/signup", json={
                "email": f"load{next(counter)}@example.com", "password": "load test password",
                "name": "Load"})
            done += response.status_code == 201
    return done


async def _run(base: str, loops: int, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        token = (await client.post("/api/auth/signup", json={
            "email": "probe@example.com", "password": "probe password", "name": "Probe"}
        )).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    idle = await _probe(base, headers, 3)
    counter = itertools.count()
    probing = asyncio.create_task(_probe(base, headers, seconds))
    created = await asyncio.gather(*(_sign_ups(base, seconds, counter) for _ in range(loops)))
    loaded = await probing
    for name, before, during in (("/healthz", idle[0], loaded[0]),
                                 ("GET /api/me", idle[1], loaded[1])):
        print(f"{name:14} idle:   {_quantiles(before)}")
        print(f"{'':14} loaded: {_quantiles(during)}")
    print(f"sign-ups completed under load: {sum(created)} in {seconds:g} s by {loops} loops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ws-signup-load-"))
    database = options.database_url or f"sqlite:///{folder / 'load.db'}"
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database, "SECRET_KEY": "bench-signup-load-" + "k" * 32,
           "BASE_URL": f"http://127.0.0.1:{port}", "SIGNUP_LIMIT_PER_CLIENT_PER_HOUR": "1000000",
           "EMAIL_BACKEND": "console"}
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "workspaces", "serve", "--migrate",
                               "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/readyz", server, folder / "serve.log")
        print(f"workspaces serve on {database.split('://')[0]}, {os.cpu_count()} cores, "
              f"{options.loops} sign-up loops for {options.seconds:g} s")
        asyncio.run(_run(base, options.loops, options.seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    main()
