"""The migrations this code knows: Alembic revision files in one linear chain, with checksums."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType

from alembic.script import Script, ScriptDirectory

from workspaces.errors import SchemaError

PACKAGED_VERSIONS = Path(__file__).parent / "versions"


def file_checksum(path: Path) -> str:
    """sha256 of a revision file, line endings normalised so a checkout on Windows agrees."""
    data = path.read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Migration:
    id: str
    path: Path
    script: Script

    @property
    def module(self) -> ModuleType:
        return self.script.module

    @property
    def title(self) -> str:
        return (self.script.doc or "").strip().splitlines()[0] if self.script.doc else ""

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
            Migration(id=s.revision, path=Path(s.path), script=s) for s in ordered
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
