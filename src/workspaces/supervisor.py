"""The supervising process of `workspaces serve --workers N`: uvicorn's supervisor, which
starts the workers, restarts one that dies and stops them all on SIGTERM or Ctrl-C.

`serve` checks the settings and the schema, then replaces itself with this module (`exec`: the
same process id, so the signals of systemd or Kubernetes still reach it) rather than run the
supervisor in the process that imported the whole application for those checks: the workers
import it afresh, and the supervisor holds only uvicorn and the log config. It owns the
workers' metrics folder: made here, removed when it stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, get_args

from workspaces import logs
from workspaces.metrics import MULTIPROC_ENV

APP = "workspaces.app:create_app"
# uvicorn's own access log is off: web/middleware.py writes one line per request. So are proxy
# headers: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; the application reads
# it only from TRUSTED_PROXIES (web.deps.client_address). `serve` with one worker uses these too.
UVICORN: dict[str, Any] = {"access_log": False, "proxy_headers": False}


def command(*, host: str, port: int, workers: int, level: logs.LogLevel,
            form: logs.LogFormat) -> list[str]:
    """The command line `serve` replaces itself with: this interpreter, and the module search
    path it had (the working directory first only if it was)."""
    cwd_first = bool(sys.path) and sys.path[0] in ("", os.getcwd())
    return [sys.executable, *([] if cwd_first else ["-P"]), "-m", __spec__.name,
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--log-level", level, "--log-format", form]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}",
                                     description="The workers of `workspaces serve`.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--log-level", choices=get_args(logs.LogLevel), required=True)
    parser.add_argument("--log-format", choices=get_args(logs.LogFormat), required=True)
    options = parser.parse_args(argv)

    import uvicorn

    _fork_workers()
    with _worker_metrics():  # uvicorn applies the log config here and in each worker
        uvicorn.run(APP, factory=True, host=options.host, port=options.port,
                    workers=options.workers,
                    log_config=logs.config(options.log_level, options.log_format), **UVICORN)


def _fork_workers() -> None:
    """On Linux, uvicorn's workers are forked from this process rather than spawned.

    A spawned worker is a fresh interpreter, and multiprocessing's spawn method starts a
    resource tracker process besides (12 MiB RSS) that tracks nothing of ours. A forked one
    starts from this process, which holds uvicorn, the log config and nothing else (the
    application is imported in the worker, after the fork, as before): no tracker, and the
    pages this process holds are shared with it. `serve --workers 2`: 20 MiB less RSS in all,
    14 MiB less PSS (docs/benchmarks.md, issue 22). This process runs no thread and no event
    loop, so nothing is forked mid-way. uvicorn names its start method in one module variable,
    `uvicorn._subprocess.spawn`: tests/test_serve_metrics.py checks the workers are this
    process's forked children and no tracker runs, so an uvicorn that moves it fails there.
    Elsewhere (macOS forks badly once system frameworks are loaded) workers are spawned."""
    if sys.platform != "linux":
        return
    import multiprocessing

    import uvicorn._subprocess

    uvicorn._subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    os.register_at_fork(after_in_child=_default_signals)


def _default_signals() -> None:
    """A forked worker starts with the signal handlers a spawned one has, not the
    supervisor's (which only queue the signal for the supervisor's loop): Ctrl-C raises
    KeyboardInterrupt and any other signal has its default action, until uvicorn's server
    installs its own."""
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2",
                 "SIGWINCH"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def _worker_metrics() -> Iterator[None]:
    """A fresh private folder (0700) where the workers write what they count, so that a scrape
    of any of them reports all (prometheus_client's multiprocess mode); removed afterwards."""
    directory = tempfile.mkdtemp(prefix="workspaces-metrics-")
    os.environ[MULTIPROC_ENV] = directory  # the workers inherit it
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
