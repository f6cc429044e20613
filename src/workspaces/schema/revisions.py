"""The migrations this code knows: Alembic revision files in one linear chain, with checksums."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from workspaces.errors import SchemaError

if TYPE_CHECKING:
    from alembic.script import Script

PACKAGED_VERSIONS = Path(__file__).parent / "versions"


def file_checksum(path: Path) -> str:
    """sha256 of a revision file, line endings normalised so a checkout on Windows agrees."""
    data = path.read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Migration:
    id: str
    path: Path
    # Alembic's script: None when read without Alembic (`read_quickly`), for status only.
    script: Script | None = field(default=None, compare=False, repr=False)
    doc: str = ""  # the docstring's first paragraph, as Alembic's Script.doc

    @property
    def module(self) -> ModuleType:
        if self.script is None:
            raise RuntimeError(f"migration {self.id} was read without Alembic")
        return self.script.module

    @property
    def title(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    @cached_property
    def checksum(self) -> str:
        return file_checksum(self.path)


class MigrationSet:
    """The ordered revisions found in a folder (the packaged `versions/` by default)."""

    def __init__(self, versions_dir: Path | None = None) -> None:
        self.versions_dir = versions_dir or PACKAGED_VERSIONS
        if not self.versions_dir.is_dir():
            raise SchemaError(
                "migrations_missing",
                f"The migrations folder {self.versions_dir} does not exist.",
                fix="Point WORKSPACES_MIGRATIONS_DIR at a folder of revision files, or unset it.",
            )
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory(
            str(self.versions_dir.parent), version_locations=[str(self.versions_dir)]
        )
        heads = scripts.get_heads()
        if len(heads) > 1:
            raise SchemaError(
                "multiple_heads",
                f"The migration history has several heads ({', '.join(sorted(heads))}).",
                fix="Make one revision revise the other so the history is a single line.",
            )
        ordered = list(reversed(list(scripts.walk_revisions())))
        for script in ordered:
            if isinstance(script.down_revision, tuple):
                raise SchemaError(
                    "merge_revision",
                    f"Revision {script.revision} merges branches; this toolkit keeps one line.",
                )
        self.migrations: list[Migration] = [
            Migration(id=s.revision, path=Path(s.path), script=s, doc=s.doc or "")
            for s in ordered
        ]
        self._by_id = {m.id: m for m in self.migrations}

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.migrations)

    def __len__(self) -> int:
        return len(self.migrations)

    def __contains__(self, migration_id: object) -> bool:
        return migration_id in self._by_id

    def get(self, migration_id: str) -> Migration:
        try:
            return self._by_id[migration_id]
        except KeyError:
            known = ", ".join(m.id for m in self.migrations) or "none"
            raise SchemaError(
                "unknown_migration",
                f"No migration {migration_id!r} in this code (known: {known}).",
                fix="workspaces db status  # lists the ids",
            ) from None

    def position(self, migration_id: str) -> int:
        return self.migrations.index(self.get(migration_id))

    @property
    def head(self) -> Migration | None:
        return self.migrations[-1] if self.migrations else None


def read_quickly(versions_dir: Path | None = None) -> list[Migration] | None:
    """The revisions in order, read from their files' text without running them (no Alembic,
    no SQLAlchemy): for the quick status. None when anything is unusual (a revision id that
    is no literal, several heads, a merge, a gap): the full reading says what is wrong."""
    folder = versions_dir or PACKAGED_VERSIONS
    if not folder.is_dir():
        return None
    down_of: dict[str, str | None] = {}
    found: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        if path.name.startswith(("_", ".#")):  # Alembic would read (or skip) it its own way
            return None
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            return None
        names: dict[str, object] = {}
        for node in tree.body:  # `revision = "..."` or `revision: str = "..."`
            target = (node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
                      else node.target if isinstance(node, ast.AnnAssign) else None)
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                names[target.id] = value.value
        revision, down = names.get("revision"), names.get("down_revision", ...)
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            return None
        if revision in found:
            return None
        down_of[revision] = down
        doc = (ast.get_docstring(tree) or "").split("\n\n")[0]
        found[revision] = Migration(id=revision, path=path, doc=doc)
    heads = set(found) - {d for d in down_of.values() if d is not None}
    if len(heads) != 1:
        return None if found else []
    ordered: list[Migration] = []
    current: str | None = heads.pop()
    while current is not None:
        if current not in found or len(ordered) > len(found):
            return None
        ordered.append(found[current])
        current = down_of[current]
    return list(reversed(ordered)) if len(ordered) == len(found) else None
