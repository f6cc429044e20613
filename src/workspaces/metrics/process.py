"""What each server process counts as it runs: requests and their latency, rate-limit
refusals, email and webhook delivery attempts, database connections in use and requests
waiting for one.

One set per process, made at import and registered in no global registry: several applications
in one process (the tests) share them and never register a name twice. With several workers
`serve` sets PROMETHEUS_MULTIPROC_DIR (before any worker imports prometheus_client): each process
then writes its values to files there, and a scrape of any worker reads them all (`source`):
counters and histograms are summed over every process that ever ran, the gauges over the live
ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import Collector

from workspaces.metrics import MULTIPROC_ENV


def _values_without_a_system_call_each() -> None:
    """With several workers each value written checks first that the process has not forked
    (it would then start files of its own), by default with `os.getpid()`: a system call for
    every count, eight or so a request (3% of an invite preview's CPU, docs/benchmarks.md). The
    process id is read once instead, and again in a child after a fork, as prometheus-client
    allows (`MultiProcessValue(process_identifier=...)`). Before the first metric is made:
    each takes the value class when it is made."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import values

    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]
        process_identifier=lambda: pid[0])


_values_without_a_system_call_each()

UNMATCHED = "<unmatched>"  # the route of a request no route matched (404s)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "workspaces_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"], registry=None)
LATENCY = Histogram(
    "workspaces_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"], registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RATE_LIMITED = Counter(
    "workspaces_rate_limited", "Events refused by a rate limit, by the setting that sets it.",
    ["limit"], registry=None)
EMAIL_ATTEMPTS = Counter(
    "workspaces_email_delivery_attempts", "Emails handed to the mail server (or the console "
    "backend), successful or not.", registry=None)
EMAIL_FAILURES = Counter(
    "workspaces_email_delivery_failures", "Delivery attempts that failed: outcome retry (to be "
    "tried again) or failed (given up: the email is marked failed).", ["outcome"],
    registry=None)
for _outcome in ("retry", "failed"):  # both series exist from the start: rate() sees the first
    EMAIL_FAILURES.labels(_outcome)
WEBHOOK_ATTEMPTS = Counter(
    "workspaces_webhook_delivery_attempts", "Webhook delivery attempts by outcome: delivered "
    "(2xx), retry (failed, tried again later), failed (failed, given up: the schedule ran "
    "out), disabled (the receiver answered 410 Gone: its endpoint was disabled).", ["outcome"],
    registry=None)
for _outcome in ("delivered", "retry", "failed", "disabled"):
    WEBHOOK_ATTEMPTS.labels(_outcome)
DB_IN_USE = Gauge(
    "workspaces_db_connections_in_use", "Database connections checked out of the pool (requests "
    "and the email and webhook loops).", registry=None, multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge(
    "workspaces_db_pool_size", "Database connections the pool may open (DATABASE_POOL_SIZE, "
    "summed over the live workers).", registry=None, multiprocess_mode="livesum")
DB_WAITING = Gauge(
    "workspaces_db_waiting_requests", "Requests waiting for a database connection slot (503 "
    "server_busy after DATABASE_POOL_TIMEOUT).", registry=None, multiprocess_mode="livesum")

_SINGLE = CollectorRegistry(auto_describe=True)
for _metric in (REQUESTS, LATENCY, RATE_LIMITED, EMAIL_ATTEMPTS, EMAIL_FAILURES,
                WEBHOOK_ATTEMPTS, DB_IN_USE, DB_POOL_SIZE, DB_WAITING):
    _SINGLE.register(_metric)
ProcessCollector(registry=_SINGLE)  # process_cpu_seconds_total, ...: one process only
PlatformCollector(registry=_SINGLE)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request. Methods outside the standard ones are `other`, so that
    clients cannot grow the label set."""
    shown = method if method in METHODS else "other"
    key = (route, shown, status)
    series = _SERIES.get(key)
    if series is None:  # as many as label sets: bounded by the routes, methods and statuses
        series = _SERIES[key] = (REQUESTS.labels(route, shown, str(status)),
                                 LATENCY.labels(route, shown))
    series[0].inc()
    series[1].observe(seconds)


# Each label set's series, found once: `labels()` costs a lock and a lookup per call.
_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def source() -> Collector:
    """What a scrape reads: this process's registry, or with several workers every worker's
    files (dead workers' live gauges dropped first)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return _SINGLE
    forget_dead_workers(Path(directory))
    registry = CollectorRegistry(auto_describe=False)
    _multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


_LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db")


def forget_dead_workers(directory: Path) -> None:
    """Remove the live gauges of processes that are gone (a worker that crashed or was
    replaced): they would otherwise count its connections forever."""
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            _multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                int(match.group(1)), str(directory))


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0: is there such a process (POSIX; `serve` runs there)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True
