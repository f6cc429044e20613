"""The README's quick start, run as a newcomer would after `./scripts/run`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _block_after(text: str, words: str) -> str:
    """The first ```bash block after the paragraph that contains `words`."""
    start = text.index(words)
    found = re.search(r"```bash\n(.*?)```", text[start:], re.DOTALL)
    assert found, f"no command block after {words!r}"
    return found.group(1)


def test_the_readme_says_how_to_run_workspaces_after_scripts_run() -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("run from the checkout's .venv (./scripts/test makes it)")
    block = _block_after((REPO / "README.md").read_text(), "is installed in that")
    ran = subprocess.run(["bash", "-euc", block], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=False)  # no venv on it
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count("Usage: workspaces") == 2  # by its path, then by its name
