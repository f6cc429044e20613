"""--profile: py-spy sampling one server worker under load, and the top of what it saw.

`py-spy record -r 200 -f raw --function --gil` writes one line per distinct stack,
`frame;frame;...;leaf count` (outermost frame first), each frame `Class.function (file:line)`
with the function's first line (--function: a function's lines add up). --gil keeps only the
samples where a thread held the GIL, i.e. ran Python or C called from it (the event loop's
included): without it py-spy's idle detection counts some of the worker's waits as work (the
thread that answers the supervisor's pings, blocked reading its pipe; the thread pool's idle
threads). So the shares below are of the worker's CPU: self time is where the leaf frame was,
inclusive time where the frame was anywhere on the stack (an await chain included: a
coroutine's frame links back to the one awaiting it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

RATE = 200  # samples per second
TOP = 15

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
# Where a file's package starts: after site-packages, the standard library or a source tree.
_ROOTS = re.compile(r"^.*(?:/site-packages/|/lib/python3\.\d+/|/src/)")


def executable() -> str | None:
    """py-spy from PATH, else beside this Python (a virtual environment's bin/)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def unavailable(pid: int) -> str | None:
    """Why py-spy cannot sample `pid` (not installed, ptrace refused), or None if it can."""
    binary = executable()
    if binary is None:
        return ("py-spy is not installed (it is in the test extra: pip install py-spy); "
                "no profiles")
    result = subprocess.run([binary, "dump", "--pid", str(pid)], capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        why = _first_line(result.stderr + result.stdout)
        return (f"py-spy cannot read the worker's stacks ({why}); ptrace may not be permitted "
                "here (kernel.yama.ptrace_scope, a container's seccomp profile or missing "
                "CAP_SYS_PTRACE); no profiles")
    return None


def start(pid: int, seconds: int, raw: Path) -> subprocess.Popen[str]:
    """py-spy recording `pid` for `seconds` into `raw`."""
    binary = executable()
    assert binary is not None
    return subprocess.Popen(
        [binary, "record", "-r", str(RATE), "-f", "raw", "--function", "--gil", "-d", str(seconds),
         "-p", str(pid), "-o", str(raw)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(recording: subprocess.Popen[str], raw: Path) -> str | None:
    """Waits for py-spy; why it recorded nothing, or None."""
    output, _ = recording.communicate(timeout=120)
    if recording.returncode != 0 or not raw.exists():
        return f"py-spy failed: {_first_line(output)}"
    return None


def _first_line(output: str) -> str:
    """py-spy's message, without the backtrace that follows it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("Error")), lines[0] if lines else
                "no message")


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = _ROOTS.sub("", match["file"])
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if head else path


@dataclass
class Profile:
    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    self_by_package: Counter[str] = field(default_factory=Counter)
    inclusive_by_package: Counter[str] = field(default_factory=Counter)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (caller, callee)

    def passing(self) -> set[str]:
        """Frames that, in every sample they are in, only call one other frame: the worker's
        start, the chain of middleware. The last of such a chain stands for all of it."""
        return {caller for (caller, _), n in self.calls.items()
                if n == self.inclusive[caller] and not self.self_time[caller]}


def parse(raw: str) -> Profile:
    """A profile from py-spy's raw output."""
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        profile.samples += n
        profile.self_time[frames[-1]] += n
        profile.self_by_package[_package(frames[-1])] += n
        for function in set(frames):
            profile.inclusive[function] += n
        for pair in set(pairwise(frames)):
            profile.calls[pair] += n
        for package in {_package(f) for f in frames}:
            profile.inclusive_by_package[package] += n
    return profile


def report(profile: Profile, title: str, top: int = TOP) -> str:
    """The top entries: by package, self time by function, inclusive time of the frames that
    do more than pass the call on."""
    if not profile.samples:
        return f"{title}: no samples (the worker ran no Python while recorded)"

    def share(n: int) -> str:
        return f"{n / profile.samples:.1%}"

    def packages(counts: Counter[str]) -> str:
        return ", ".join(f"{name} {share(n)}" for name, n in counts.most_common(top))

    lines = [f"{title}: {profile.samples:,} samples",
             f"self time by package: {packages(profile.self_by_package)}",
             f"inclusive time by package: {packages(profile.inclusive_by_package)}",
             "", "| self | function |", "|---|---|"]
    lines += [f"| {share(n)} | `{name}` |" for name, n in profile.self_time.most_common(top)]
    passing = profile.passing()
    notable = [(name, n) for name, n in profile.inclusive.most_common()
               if name not in passing][:top]
    lines += ["", "| inclusive | frame (one that only calls another is shown by the last of "
              "the chain) |", "|---|---|"]
    lines += [f"| {share(n)} | `{name}` |" for name, n in notable]
    return "\n".join(lines)
