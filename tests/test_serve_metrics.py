"""/metrics from `workspaces serve --workers 2`: whichever worker answers the scrape, it counts
every worker's requests; a worker that dies is forgotten by the live gauges; the folder the
workers share is removed when the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import server_log, serving

ROUTE = "/api/workspaces/{slug}/invites"
POOL = 3


def _value(text: str, sample: str, **labels: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == sample and labels.items() <= s.labels.items())


def _workers(server_pid: int) -> set[int]:
    """The server's worker processes (its children, but multiprocessing's resource tracker)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return {int(pid) for pid in children
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}


def _started(process: subprocess.Popen[str], workers: int) -> None:
    """Wait (a hang guard, not a target) until this many workers have started in all."""
    deadline = time.monotonic() + 60
    while server_log(process).count("Application startup complete.") < workers:
        assert time.monotonic() < deadline, f"{workers} workers did not start"
        time.sleep(0.2)


def test_metrics_sum_over_workers_and_forget_dead_ones(sqlite_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_POOL_SIZE": str(POOL), "TMPDIR": str(tmp_path)}
    with serving(["--database-url", sqlite_url, "--workers", "2"], env) as (base, process):
        _started(process, 2)  # /healthz answered from one: both must count before a scrape

        def ask(_: int) -> int:
            return httpx.get(f"{base}/api/workspaces/acme-{_}/invites").status_code

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(ask, range(20))) == {401}
        for _ in range(6):  # several scrapes: each worker answers some, each tells the same
            text = httpx.get(f"{base}/metrics").text
            assert _value(text, "workspaces_http_requests_total", route=ROUTE) == 20
            assert _value(text, "workspaces_db_pool_size") == 2 * POOL  # both workers, live
            assert _value(text, "workspaces_ready") == 1
        assert list(tmp_path.glob("workspaces-metrics-*"))  # the workers' shared folder

        workers = _workers(process.pid)
        assert len(workers) == 2
        os.kill(min(workers), signal.SIGKILL)  # uvicorn starts another in its place
        _started(process, 3)  # uvicorn's replacement
        assert len(_workers(process.pid) - workers) == 1
        for _ in range(4):
            text = httpx.get(f"{base}/metrics").text
            assert _value(text, "workspaces_db_pool_size") == 2 * POOL  # not 3 workers' worth
            assert _value(text, "workspaces_http_requests_total", route=ROUTE) == 20  # kept
    assert not list(tmp_path.glob("workspaces-metrics-*"))  # removed at exit


# What the application loads and uvicorn's supervisor does not: C extensions of its libraries,
# seen in a process's memory map (/proc/PID/maps) whichever Python module imported them.
APPLICATION_LIBRARIES = ("sqlalchemy", "pydantic_core", "cryptography", "_argon2_cffi_bindings")


def _libraries(pid: int) -> set[str]:
    mapped = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in APPLICATION_LIBRARIES if f"/{name}/" in mapped}


def test_the_supervisor_holds_uvicorn_not_the_application(sqlite_url: str,
                                                           tmp_path: Path) -> None:
    """`serve` imports the application for its checks, then becomes the supervisor (exec: the
    same process, which systemd or Kubernetes signal) with only uvicorn and the log config;
    the workers, forked from it, import the application afterwards. Its folder of metrics is
    the supervisor's."""
    with serving(["--database-url", sqlite_url, "--workers", "2"],
                 {"TMPDIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
                 ) as (base, process):
        _started(process, 2)
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"workspaces.supervisor" in command
        assert f"Started parent process [{process.pid}]" in server_log(process)
        assert _libraries(process.pid) == set()
        workers = _workers(process.pid)
        assert len(workers) == 2
        assert all(_libraries(pid) == set(APPLICATION_LIBRARIES) for pid in workers)
        # Forked (supervisor._fork_workers): the supervisor's own command line, no spawned
        # interpreter, and no resource tracker beside them.
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert sorted(int(pid) for pid in children) == sorted(workers)
        assert all(Path(f"/proc/{pid}/cmdline").read_bytes() == b"\0".join(command)
                   for pid in workers)
        for pid in workers:  # not the supervisor's handlers: HUP, QUIT, USR1 act as on a
            status = Path(f"/proc/{pid}/status").read_text()  # spawned worker; INT and TERM
            caught = int(status.split("SigCgt:")[1].split()[0], 16)  # are uvicorn's server's
            assert [sig for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
                    if caught >> (sig - 1) & 1] == []
            assert caught >> (signal.SIGTERM - 1) & 1
        (folder,) = tmp_path.glob("workspaces-metrics-*")  # fresh, not the one in the env
        assert folder.stat().st_mode & 0o777 == 0o700
        assert httpx.get(f"{base}/metrics").status_code == 200
        assert list(folder.iterdir())  # where the workers write their counts
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        assert not folder.exists()
        assert [p for p in workers if Path(f"/proc/{p}").exists()] == []
    assert "Stopping parent process" in server_log(process)


_FORKED = """
import os, sys
from workspaces.metrics import process
process.REQUESTS.labels("/x", "GET", "200").inc()
child = os.fork()
if child == 0:  # a forked child counts in files of its own, as with os.getpid() each time
    process.REQUESTS.labels("/x", "GET", "200").inc(5)
    os._exit(0)
os.waitpid(child, 0)
process.REQUESTS.labels("/x", "GET", "200").inc(2)
print(os.getpid(), child)
"""


def test_each_process_counts_in_files_of_its_own_also_after_a_fork(tmp_path: Path) -> None:
    """The process id a value checks before each write is read once, and again after a fork
    (metrics.process): no system call per count, and a forked child still writes its own."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    out = subprocess.run([sys.executable, "-c", _FORKED], env={**os.environ,
                         "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, capture_output=True,
                         text=True, check=True).stdout
    parent, child = out.split()
    assert {p.name for p in tmp_path.glob("counter_*")} == {f"counter_{parent}.db",
                                                            f"counter_{child}.db"}
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    counted = [s.value for f in registry.collect() for s in f.samples
               if s.name == "workspaces_http_requests_total"]
    assert counted == [8.0]
