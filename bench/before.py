"""--before REV: the application of another revision of this repository, to serve beside the
current one on the same database.

The revision is checked out in a temporary `git worktree` (detached, removed afterwards) and its
server runs with PYTHONPATH=<tree>/src, so that its `workspaces` package is the one imported;
everything else (the seed, the captured SQL, the floor, the libraries) is the current tree's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True)


@contextmanager
def worktree(revision: str) -> Iterator[tuple[Path, str]]:
    """(the checked-out tree, its commit id); SystemExit if `revision` names no commit."""
    found = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        raise SystemExit(f"--before {revision}: no such revision in {REPOSITORY}")
    commit = found.stdout.strip()
    parent = Path(tempfile.mkdtemp(prefix="wsbench-before-"))
    tree = parent / "tree"
    try:
        added = _git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        if added.returncode != 0:
            raise SystemExit(f"--before {revision}: git worktree add failed: {added.stderr}")
        yield tree, commit
    finally:
        if tree.exists():
            removed = _git("worktree", "remove", "--force", str(tree))
            if removed.returncode != 0:
                print(f"could not remove the worktree {tree}: {removed.stderr}", file=sys.stderr)
        shutil.rmtree(parent, ignore_errors=True)


def environment(tree: Path, base: dict[str, str]) -> dict[str, str]:
    """`base` with the tree's package first on the path (and nothing else of ours)."""
    return {**base, "PYTHONPATH": str(tree / "src")}


def refusal(tree: Path, base: dict[str, str], database: str) -> str | None:
    """Why the tree's application, run in `base` as its server will be, cannot serve
    `database`: its `workspaces` is not the one imported, or its `db status` is not OK there
    (a schema the revision does not know). None when it can."""
    env = environment(tree, base)
    imported = subprocess.run(
        [sys.executable, "-c", "import workspaces; print(workspaces.__file__)"], env=env,
        capture_output=True, text=True)
    where = Path(imported.stdout.strip() or ".").resolve()
    if imported.returncode != 0 or not where.is_relative_to(tree.resolve()):
        return (f"the before tree's package is not the one imported ({where}): "
                f"{imported.stderr.strip()}")
    status = subprocess.run(
        [sys.executable, "-m", "workspaces", "db", "status", "--database-url", database],
        env=env, capture_output=True, text=True, timeout=300)
    if status.returncode != 0:
        return (f"`workspaces db status` of the before tree is not OK on the seeded database "
                f"(exit code {status.returncode}):\n{status.stdout}{status.stderr}")
    return None
