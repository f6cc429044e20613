"""The event feed's read throughput with 100,000 events in the log.

    python -m bench.feed [--database-url URL] [--events 100000] [--clients 16]
                         [--seconds 10] [--workers 2]

Creates a scratch database on the given PostgreSQL server (TEST_DATABASE_URL, else an embedded
one), starts `workspaces serve` as a real process, signs an owner up through the API and makes
two workspaces, then writes `--events` events straight into the log, every other one in the
owner's workspace (as `tell` writes them: one transaction id per batch of 1,000). Then:

1. **catch-up**: one consumer reads the owner's workspace feed from the start with
   `limit=100`, storing each `next_cursor` and passing it as `after`, until `has_more` is
   false: events read per second, and a check that it saw each of its events once;
2. **polling**: `--clients` consumers each read pages at cursors spread over the feed for
   `--seconds`: pages per second and p50/p99 latency.

Prints the figures (docs/benchmarks.md, "The event feed"); never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.scratch import scratch_database
from bench.webhooks import _process, _quantile

BATCH = 1000


def _seed(database: str, workspace: uuid.UUID, slug: str, other: uuid.UUID, count: int) -> None:
    """`count` member.added events, every other one in `workspace`, in transactions of
    BATCH events, with payloads shaped as `tell` writes them."""
    engine = create_engine(database)
    with engine.connect() as conn:
        for start in range(0, count, BATCH):
            conn.execute(text("""
                INSERT INTO events (txid, id, type, workspace_id, occurred_at, payload)
                SELECT pg_current_xact_id()::text::bigint, e.id, 'member.added', e.ws, now(),
                       json_build_object(
                         'id', e.id, 'type', 'member.added', 'version', 1,
                         'occurred_at', to_char(now() AT TIME ZONE 'UTC',
                                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                         'workspace', json_build_object('id', e.ws, 'slug', CAST(:slug AS text)),
                         'actor', json_build_object('type', 'system', 'id', null,
                                                    'email', null),
                         'data', json_build_object(
                           'member', json_build_object(
                             'user_id', gen_random_uuid(), 'email',
                             'member' || e.n || '@bench.example', 'name', 'Member ' || e.n,
                             'role', 'member'),
                           'how', 'created'))
                FROM (SELECT n, 'evt_' || replace(gen_random_uuid()::text, '-', '') AS id,
                             CASE WHEN n % 2 = 0 THEN CAST(:ws AS uuid)
                                  ELSE CAST(:other AS uuid) END AS ws
                      FROM generate_series(CAST(:start AS int), CAST(:stop AS int)) AS n) AS e
                ORDER BY e.n"""), {"ws": str(workspace), "other": str(other), "slug": slug,
                                    "start": start, "stop": min(count, start + BATCH) - 1})
            conn.commit()
        conn.execute(text("ANALYZE events"))
        conn.commit()
    engine.dispose()


async def _catch_up(base: str, slug: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """Read the whole feed page by page; (events, distinct ids, seconds)."""
    seen: list[str] = []
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        after: str | None = None
        while True:
            params = {"limit": "100", **({"after": after} if after else {})}
            page = (await client.get(f"/api/workspaces/{slug}/events", params=params)).json()
            seen += [item["id"] for item in page["items"]]
            after = page["next_cursor"]
            if not page["has_more"]:
                break
    return len(seen), len(set(seen)), time.perf_counter() - started


async def _cursors(base: str, slug: str, headers: dict[str, str], every: int) -> list[str]:
    """Cursors spread over the feed: one every `every` pages."""
    found: list[str] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        after: str | None = None
        page_number = 0
        while True:
            params = {"limit": "100", **({"after": after} if after else {})}
            page = (await client.get(f"/api/workspaces/{slug}/events", params=params)).json()
            after = page["next_cursor"]
            if page_number % every == 0 and after:
                found.append(after)
            page_number += 1
            if not page["has_more"]:
                return found


async def _polling(base: str, slug: str, headers: dict[str, str], cursors: list[str],
                   clients: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def consumer(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            answer = await client.get(f"/api/workspaces/{slug}/events",
                                      params={"limit": "100",
                                              "after": random.choice(cursors)})  # noqa: S311
            assert answer.status_code == 200, answer.text
            latencies.append((time.perf_counter() - began) * 1000)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                 limits=limits) as client:
        await asyncio.gather(*(consumer(client) for _ in range(clients)))
    return len(latencies), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    with scratch_database(options.database_url, "wsbench_feed") as (database, version):
        from bench.__main__ import SECRET, _free_port

        port = _free_port()
        env = {"DATABASE_URL": database, "SECRET_KEY": SECRET, "EMAIL_BACKEND": "console",
               "LOG_LEVEL": "WARNING"}
        base = f"http://127.0.0.1:{port}"
        with _process([sys.executable, "-m", "workspaces", "serve", "--port", str(port),
                       "--workers", str(options.workers)], env, f"{base}/readyz",
                      folder / "server.log"):
            signup = httpx.post(f"{base}/api/auth/signup", json={
                "email": "owner@bench.example", "password": "bench password 1",
                "name": "Owner"}, timeout=30)
            headers = {"Authorization": f"Bearer {signup.json()['token']}"}
            made = [httpx.post(f"{base}/api/workspaces", json={"name": n}, headers=headers,
                               timeout=30).json() for n in ("Feed", "Other")]
            _seed(database, uuid.UUID(made[0]["id"]), made[0]["slug"],
                  uuid.UUID(made[1]["id"]), options.events)
            slug = made[0]["slug"]
            read, distinct, took = asyncio.run(_catch_up(base, slug, headers))
            cursors = asyncio.run(_cursors(base, slug, headers, every=10))
            pages, latencies = asyncio.run(_polling(base, slug, headers, cursors,
                                                    options.clients, options.seconds))
    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{options.workers} server workers, {options.events:,} events in the log\n")
    print("| measure | figure |")
    print("|---|---|")
    print(f"| one consumer catching up on its workspace's {read:,} events, 100 a page | "
          f"{read / took:,.0f} events/s ({distinct:,} distinct, {took:.1f} s) |")
    print(f"| {options.clients} consumers reading pages at cursors spread over the feed | "
          f"{pages / options.seconds:,.0f} pages/s, p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {_quantile(latencies, 0.99):.1f} ms |")


if __name__ == "__main__":
    main()
