"""A server under benchmark as a tree of processes: started in a group of its own and stopped
with everything it started, its memory (RSS and PSS) and its busiest worker, read from /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    """MiB summed over a process and its descendants."""

    rss: float  # resident: a page shared by several processes counts in each
    pss: float  # proportional: a page shared by n processes counts 1/n in each (nan: unknown)


def tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo.extend(sorted(children.get(current, [])))
    return found


def _kib(path: str, field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def memory(pid: int) -> Memory:
    """RSS (VmRSS of /proc/PID/status) and PSS (Pss of /proc/PID/smaps_rollup) of the tree."""
    rss = pss = 0
    pss_known = True
    for current in tree(pid):
        resident = _kib(f"/proc/{current}/status", "VmRSS")
        if resident is None:  # gone, or a kernel thread
            continue
        rss += resident
        proportional = _kib(f"/proc/{current}/smaps_rollup", "Pss")
        pss_known = pss_known and proportional is not None
        pss += proportional or 0
    return Memory(rss / 1024, pss / 1024 if pss_known else float("nan"))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def busiest(pid: int) -> int:
    """The descendant of `pid` that has used the most CPU (a worker that has served requests,
    not the resource tracker), or `pid` itself when it has none."""
    descendants = tree(pid)[1:]
    return max(descendants, key=cpu_seconds) if descendants else pid


@contextmanager
def group(command: list[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """`command` started as the leader of a new process group. On exit the leader is asked to
    stop (SIGTERM, as an operator would), and whatever of the group is left after it is gone,
    or after 30 s, is killed: a server that failed half-way leaves no workers behind."""
    process = subprocess.Popen(command, start_new_session=True, **popen)
    try:
        yield process
    finally:
        process.terminate()
        deadline = time.monotonic() + 30
        # Waited for without reaping: while the leader is a zombie its id stays the group's.
        while process.returncode is None and time.monotonic() < deadline and os.waitid(
                os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            time.sleep(0.05)
        with suppress(ProcessLookupError):  # none left
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
