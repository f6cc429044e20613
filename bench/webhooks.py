"""Webhook delivery: how many events a server delivers per second to a local receiver, and the
time from commit to receipt at a steady rate.

    python -m bench.webhooks [--database-url URL] [--backlog 5000] [--rate 20]
                             [--seconds 20] [--workers 2]

Creates a scratch database on the given PostgreSQL server (TEST_DATABASE_URL, else an embedded
one), starts a receiver (bench/receiver.py, uvicorn) and `workspaces serve` as real processes,
with one instance endpoint pointing at the receiver, then:

1. **backlog**: `--backlog` events told in one transaction (user.deleted, as the services tell
   them, from this process): the figure is events delivered per second, from the first
   arrival to the last;
2. **steady**: an owner creates invites through the API at `--rate` per second for
   `--seconds`: each `invite.created` is delivered by the loop the commit woke; the figure is
   the time from the event's `occurred_at` (taken in the transaction, just before it commits)
   to its arrival at the receiver, p50/p99/max.

Prints the figures (docs/benchmarks.md, "Webhook delivery"); never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import SECRET, _free_port, _wait_ready
from bench.scratch import scratch_database

HERE = Path(__file__).parent


@contextmanager
def _process(args: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=HERE.parent)
    try:
        _wait_ready(ready, process, log)
        yield
    finally:
        process.terminate()
        process.wait(30)


def _endpoint(database: str, url: str) -> None:
    """One instance endpoint, every type, as the service saves it (secret sealed)."""
    from workspaces import clock
    from workspaces.db import create_sync_engine, parse_url
    from workspaces.models import webhook_endpoints
    from workspaces.security import seal

    engine = create_sync_engine(parse_url(database))
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(webhook_endpoints.insert().values(
            id=uuid.uuid4(), workspace_id=None, url=url, description="bench",
            event_types=None, sealed_secret=seal(SECRET, "whsec_" + "A" * 32), enabled=True,
            created_at=now, updated_at=now))
    engine.dispose()


def _stats(receiver: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{receiver}/stats", timeout=30).json()
    return result


def _wait_for(receiver: str, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (stats := _stats(receiver))["received"] < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stats['received']} of {count} deliveries after {timeout} s")
        time.sleep(0.2)
    return stats


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _backlog(database: str, count: int) -> None:
    """`count` events of no workspace, told in one transaction (so fanned out to the endpoint
    as the services' are)."""
    from workspaces.db import create_app_engine, parse_url
    from workspaces.events import changes
    from workspaces.events.tell import SYSTEM, tell

    engine = create_app_engine(parse_url(database), pool_size=1)
    try:
        async with engine.begin() as conn:
            for start in range(0, count, 1000):
                await tell(conn, *(changes.user_deleted(
                    changes.user(uuid.uuid4(), f"gone{n}@bench.example", "Gone"), SYSTEM)
                    for n in range(start, min(count, start + 1000))))
    finally:
        await engine.dispose()


async def _steady(base: str, rate: float, seconds: float) -> int:
    """Invites at `rate` per second for `seconds`, each sent on its own schedule (a slow
    answer does not delay the next); returns how many were created."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        signup = await client.post("/api/auth/signup", json={
            "email": "owner@bench.example", "password": "bench password 1", "name": "Owner"})
        headers = {"Authorization": f"Bearer {signup.json()['token']}"}
        made = await client.post("/api/workspaces", json={"name": "Hooks"}, headers=headers)
        slug = made.json()["slug"]
        started = time.monotonic()
        total = int(rate * seconds)

        async def invite(n: int) -> bool:
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            answer = await client.post(f"/api/workspaces/{slug}/invites", headers=headers,
                                       json={"email": f"hooked{n}@bench.example"})
            return answer.status_code == 201

        return sum(await asyncio.gather(*(invite(n) for n in range(total))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    with scratch_database(options.database_url, "wsbench_hooks") as (database, version):
        receiver_port, port = _free_port(), _free_port()
        receiver = f"http://127.0.0.1:{receiver_port}"
        _endpoint(database, f"{receiver}/hook")
        env = {"DATABASE_URL": database, "SECRET_KEY": SECRET, "EMAIL_BACKEND": "console",
               "LOG_LEVEL": "WARNING", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
               "INVITE_RATE_LIMIT_PER_HOUR": str(10**9),
               "INVITE_LIMIT_PER_USER_PER_HOUR": str(10**9),
               "INVITE_LIMIT_PER_RECIPIENT_PER_DAY": str(10**9)}
        with _process([sys.executable, "-m", "uvicorn", "bench.receiver:app", "--port",
                       str(receiver_port), "--loop", "uvloop", "--http", "httptools",
                       "--no-access-log"], {}, f"{receiver}/stats", folder / "receiver.log"), \
                _process([sys.executable, "-m", "workspaces", "serve", "--port", str(port),
                          "--workers", str(options.workers)], env,
                         f"http://127.0.0.1:{port}/readyz", folder / "server.log"):
            asyncio.run(_backlog(database, options.backlog))
            stats = _wait_for(receiver, options.backlog, timeout=600)
            arrivals = sorted(m[2] for m in stats["messages"])
            rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
            duplicates = len(arrivals) - len({m[0] for m in stats["messages"]})
            before = stats["received"]
            created = asyncio.run(_steady(f"http://127.0.0.1:{port}", options.rate,
                                          options.seconds))
            # The owner's sign-up and workspace are delivered too: user.created,
            # workspace.created, member.added.
            stats = _wait_for(receiver, before + created + 3, timeout=120)
            latencies = [m[3] * 1000 for m in stats["messages"][before:]
                         if m[1] == "invite.created"]
    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{options.workers} server workers\n")
    print("| measure | figure |")
    print("|---|---|")
    print(f"| backlog of {options.backlog:,} events, first to last arrival | "
          f"{rate:,.0f} events/s ({duplicates} duplicates) |")
    print(f"| {created} invites at {options.rate:g}/s for {options.seconds:g} s: commit to "
          f"receipt | p50 {statistics.median(latencies):.1f} ms, p99 "
          f"{_quantile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms |")


if __name__ == "__main__":
    main()
