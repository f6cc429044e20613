"""Compare the live database with a SchemaModel, using Alembic's autogenerate comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, MetaData, Table, inspect

from workspaces.schema.expected import ObjectKey, SchemaModel

MISSING, DIFFERS, EXTRA = "missing", "differs", "extra"


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | differs | extra
    key: ObjectKey
    migration_id: str | None
    detail: str
    diff: Any  # Alembic's diff entry, used by `repair`

    def describe(self) -> str:
        if self.kind == MISSING:
            return f"{self.key.describe()} is missing"
        if self.kind == DIFFERS:
            return f"{self.key.describe()} differs: {self.detail}"
        return f"{self.key.describe()} exists but no applied migration creates it"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object": self.key.describe(),
            "object_kind": self.key.kind,
            "table": self.key.table,
            "name": self.key.name,
            "migration": self.migration_id,
            "detail": self.detail,
        }


def _key_of(entry: Any) -> tuple[str, ObjectKey, str]:
    """(kind, object, detail) for one entry of Alembic's diff list."""
    if isinstance(entry, list):  # column modifications come grouped
        op, _schema, table, column, _existing, old, new = entry[0]
        what = "nullable" if op == "modify_nullable" else "type"
        if op == "modify_nullable":
            old, new = ("NULL" if old else "NOT NULL"), ("NULL" if new else "NOT NULL")
        return DIFFERS, ObjectKey("column", table, column), f"{what} is {old}, expected {new}"
    op = entry[0]
    verb, _, noun = op.partition("_")
    kind = MISSING if verb == "add" else EXTRA
    if noun == "table":
        return kind, ObjectKey("table", entry[1].name), ""
    if noun == "column":
        return kind, ObjectKey("column", entry[2], entry[3].name), ""
    obj = entry[1]
    table = obj.table.name if isinstance(obj.table, Table) else str(obj.table)
    object_kind = {"index": "index", "constraint": "unique", "fk": "foreign_key"}.get(noun, noun)
    return kind, ObjectKey(object_kind, table, str(obj.name)), ""


_COMMENT_OPS = ("add_table_comment", "remove_table_comment", "modify_comment")


def _without_comments(entries: list[Any]) -> list[Any]:
    """Alembic's diff without comments: the migrations set none, and a comment an operator adds
    to a table or column changes nothing the application relies on (it is not drift)."""
    kept: list[Any] = []
    for entry in entries:
        if isinstance(entry, list):
            entry = [change for change in entry if change[0] not in _COMMENT_OPS]
            if entry:
                kept.append(entry)
        elif entry[0] not in _COMMENT_OPS:
            kept.append(entry)
    return kept


def compare(conn: Connection, model: SchemaModel) -> list[Difference]:
    """Differences between the live schema and the model, each blamed on a migration."""
    expected = model.to_metadata()
    tables = set(expected.tables)

    def include_name(name: str | None, type_: str, parent: Any) -> bool:
        return type_ != "table" or name in tables

    context = MigrationContext.configure(
        connection=conn,
        opts={"compare_type": True, "include_name": include_name},
    )
    result: list[Difference] = []
    for entry in _without_comments(compare_metadata(context, expected)):
        kind, key, detail = _key_of(entry)
        result.append(Difference(kind, key, model.origin.get(key), detail, entry))
    return result + _missing_checks(conn, expected, model)


def _missing_checks(conn: Connection, expected: MetaData, model: SchemaModel
                    ) -> list[Difference]:
    """Named CHECK constraints the live tables lack (Alembic compares none). By name only:
    each database spells a definition its own way (`status IN (...)` comes back from
    PostgreSQL as `(status)::text = ANY (ARRAY[...])`)."""
    inspector = inspect(conn)
    live = set(inspector.get_table_names())
    found: list[Difference] = []
    for table in expected.sorted_tables:
        if table.name not in live:
            continue  # a missing table takes its checks with it
        present = {c["name"] for c in inspector.get_check_constraints(table.name)}
        for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
            if (isinstance(constraint, CheckConstraint) and constraint.name
                    and str(constraint.name) not in present):
                key = ObjectKey("check", table.name, str(constraint.name))
                found.append(Difference(MISSING, key, model.origin.get(key), "",
                                        ("add_check", constraint)))
    return found


def missing_keys(model: SchemaModel, differences: list[Difference]) -> set[ObjectKey]:
    """Every object of the model that is absent or different (a missing table takes its parts)."""
    keys: set[ObjectKey] = set()
    for difference in differences:
        if difference.kind == EXTRA:
            continue
        keys.add(difference.key)
        if difference.kind == MISSING and difference.key.kind == "table":
            keys.update(k for k in model.origin if k.table == difference.key.table)
    return keys
