"""Choices the toolkit's commands take, importable without SQLAlchemy (the CLI loads late)."""

from __future__ import annotations

from enum import StrEnum


class Orphans(StrEnum):
    """What `db repair --orphans` does with rows whose referenced row is gone."""

    refuse = "refuse"  # the default: show them and stop
    null = "null"  # clear the reference (nullable columns only)
    delete = "delete"  # delete the rows
    keep = "keep"  # PostgreSQL: add the key NOT VALID and keep the rows
