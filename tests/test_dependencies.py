"""The declared dependencies, the lock files and the imports agree.

scripts/test, scripts/run and CI install exactly requirements/*.lock; pyproject.toml says what
the code works with. A dependency added to one and not the other, or a module imported from a
distribution nobody declared (it arrived with another one, until the day it does not), fails
here rather than on somebody's fresh machine.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)(?:\s*;\s*([^\\]+))?",
                 re.MULTILINE)


def declared(extra: str | None) -> list[Requirement]:
    requirements = [Requirement(r) for r in PROJECT["dependencies"]]
    if extra:
        requirements += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return requirements


def locked(name: str) -> dict[str, list[tuple[str, str | None]]]:
    """Each pinned distribution of requirements/<name>.lock: its versions, with their markers
    (a universal lock may pin one distribution twice, for different Pythons)."""
    pins: dict[str, list[tuple[str, str | None]]] = {}
    for dist, version, marker in PIN.findall((ROOT / "requirements" / name).read_text()):
        pins.setdefault(canonicalize_name(dist), []).append((version, marker.strip() or None))
    return pins


@pytest.mark.parametrize(("lock", "extra"), [("run.lock", None), ("test.lock", "test")])
def test_every_declared_dependency_is_locked_within_its_bounds(
        lock: str, extra: str | None) -> None:
    pins = locked(lock)
    stale = []
    for requirement in declared(extra):
        name = canonicalize_name(requirement.name)
        versions = [v for v, m in pins.get(name, []) if m is None or Marker(m).evaluate()]
        if requirement.marker and not requirement.marker.evaluate():
            continue
        if not versions or not all(requirement.specifier.contains(v, prereleases=True)
                                   for v in versions):
            stale.append(f"{requirement} (locked: {', '.join(versions) or 'nothing'})")
    assert not stale, (f"requirements/{lock} does not satisfy pyproject.toml: {stale}; "
                       "run ./scripts/lock")


def test_locks_carry_hashes() -> None:
    for lock in ("run.lock", "test.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        assert len(locked(lock)) > 20
        assert text.count("==") <= text.count("--hash=sha256:"), lock


def test_every_imported_distribution_is_declared() -> None:
    """Top-level imports of the package (lazy ones inside functions too) map to distributions
    the project declares, or to the standard library."""
    owners = packages_distributions()
    names = {canonicalize_name(r.name) for r in declared(None)}
    missing = set()
    for path in (ROOT / "src" / "workspaces").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.module
                       and not node.level else [])
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "workspaces":
                    continue
                dists = {canonicalize_name(d) for d in owners.get(top, [top])}
                if not dists & names:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
