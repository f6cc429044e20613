"""Rows that a repair's new constraints would refuse, and what to do with them.

When a table is dropped and recreated (empty), the rows that pointed at it point at nothing:
PostgreSQL dropped their foreign keys with `DROP ... CASCADE` and refuses to add them back;
SQLite kept the key in the child's definition and would keep the orphans silently. Before
repair adds anything, every constraint it will add (and every foreign key whose parent table it
will recreate) is checked against the rows already there. Orphans are the operator's choice
(`--orphans=null|delete|keep`); duplicates and rows a NOT NULL column or a check refuses are
shown with sample keys, to be fixed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Connection,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    and_,
    delete,
    exists,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.schema import AddConstraint

from workspaces.schema.choices import Orphans

SAMPLES = 5


def count(number: int, noun: str) -> str:
    """`1 row`, `1,234 rows`."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class Violation:
    """Rows of one table that one constraint would refuse."""

    kind: str  # orphans | duplicates | check | not_null
    table: str
    constraint: str  # in words
    rows: int
    samples: list[str]
    nullable: bool = False  # orphans: every referencing column can be NULL
    where: Any = None  # orphans: the condition selecting them
    columns: tuple[str, ...] = ()
    foreign_key: str | None = None  # orphans: the key's name

    def describe(self) -> str:
        rows = count(self.rows, "row")
        keys = f" (e.g. {', '.join(self.samples)})" if self.samples else ""
        return f"{self.table}: {rows} {self.constraint}{keys}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "table": self.table, "constraint": self.constraint,
                "rows": self.rows, "samples": self.samples, "nullable": self.nullable}


def _pk_samples(conn: Connection, table: Table, where: Any) -> list[str]:
    key = list(table.primary_key.columns) or list(table.columns)[:1]
    rows = conn.execute(select(*key).where(where).order_by(*key).limit(SAMPLES))
    return [", ".join(f"{c.name}={value}" for c, value in zip(key, row, strict=True))
            if len(key) > 1 else f"{key[0].name}={row[0]}" for row in rows]


def _orphans(conn: Connection, fk: ForeignKeyConstraint, parent_exists: bool
             ) -> Violation | None:
    child = fk.table
    local = [child.c[c.name] for c in fk.columns]
    referred = [e.column for e in fk.elements]
    present = and_(*(c.isnot(None) for c in local))
    where: ColumnElement[bool]
    if parent_exists:
        matched = exists().where(*(p == c for p, c in zip(referred, local, strict=True)))
        where = and_(present, ~matched.correlate(child))
    else:  # recreated empty: every reference points at nothing
        where = present
    count = conn.execute(select(func.count()).select_from(child).where(where)).scalar_one()
    if not count:
        return None
    columns = ", ".join(c.name for c in local)
    return Violation(
        "orphans", child.name,
        f"reference {referred[0].table.name} rows that no longer exist (foreign key "
        f"{fk.name}: {child.name}.{columns} -> {referred[0].table.name})",
        count, _pk_samples(conn, child, where),
        nullable=all(c.nullable for c in local), where=where,
        columns=tuple(c.name for c in local), foreign_key=str(fk.name))


def _duplicates(conn: Connection, table: Table, columns: list[Any], name: str,
                where: Any) -> Violation | None:
    present = and_(*(c.isnot(None) for c in columns), where if where is not None else true())
    groups = (select(*columns).where(present).group_by(*columns)
              .having(func.count() > 1).subquery())
    in_group = exists().where(*(getattr(groups.c, c.name) == c for c in columns))
    dup = and_(present, in_group.correlate(table))
    count = conn.execute(select(func.count()).select_from(table).where(dup)).scalar_one()
    if not count:
        return None
    return Violation("duplicates", table.name,
                     f"share a value of {', '.join(c.name for c in columns)} that {name} "
                     "requires to be unique", count, _pk_samples(conn, table, dup))


def check(conn: Connection, metadata: MetaData, diffs: list[Any],
          created_tables: set[str]) -> list[Violation]:
    """Rows in tables that exist now that the repair's constraints would refuse."""
    found: list[Violation | None] = []
    planned_fks = {(d[1].table.name, d[1].name) for d in diffs if d[0] == "add_fk"}
    for table in metadata.sorted_tables:
        if table.name in created_tables:
            continue  # created empty
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table.name
            if (table.name, fk.name) in planned_fks or parent in created_tables:
                found.append(_orphans(conn, fk, parent_exists=parent not in created_tables))
    for diff in diffs:
        kind, obj = diff[0], diff[1]
        if kind == "add_table":
            continue
        table_name = diff[2] if kind == "add_column" else getattr(obj.table, "name", None)
        if table_name in created_tables or table_name is None:
            continue
        table = metadata.tables[table_name]
        if kind == "add_index" and isinstance(obj, Index) and obj.unique:
            where = obj.dialect_options["postgresql"].get("where")
            if where is None:
                where = obj.dialect_options["sqlite"].get("where")
            columns = [table.c[c.name] for c in obj.columns]
            if where is not None:  # a partial index: only its rows must be unique
                where = text(str(where))
            found.append(_duplicates(conn, table, columns, f"unique index {obj.name}", where))
        elif kind == "add_constraint" and isinstance(obj, UniqueConstraint):
            found.append(_duplicates(conn, table, [table.c[c.name] for c in obj.columns],
                                     f"unique constraint {obj.name}", None))
        elif kind in ("add_constraint", "add_check") and isinstance(obj, CheckConstraint):
            refused = text(f"NOT ({obj.sqltext})")
            count = conn.execute(select(func.count()).select_from(table)
                                 .where(refused)).scalar_one()
            if count:
                found.append(Violation("check", table.name, f"break check constraint {obj.name} "
                                       f"({obj.sqltext})", count,
                                       _pk_samples(conn, table, refused)))
        elif kind == "add_column":
            column = diff[3]
            if not column.nullable and column.server_default is None:
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
                if count:
                    found.append(Violation("not_null", table.name,
                                           f"would have no value for the new NOT NULL column "
                                           f"{column.name} (it has no default)", count,
                                           _pk_samples(conn, table, true())))
    return [v for v in found if v is not None]


@dataclass(frozen=True)
class Cleared:
    """A reference `--orphans=null` cleared: the row, and the value it held (to link the row
    again once the rows it pointed at are restored from a backup)."""

    table: str
    key: dict[str, str]
    was: dict[str, str]

    def describe(self) -> str:
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        was = ", ".join(f"{k} was {v}" for k, v in self.was.items())
        return f"{self.table} {key}: {was}"

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "was": self.was}


@dataclass
class Settled:
    """What settling the orphans did: in words, and each reference it cleared."""

    done: list[str]
    cleared: list[Cleared]


def settle(conn: Connection, metadata: MetaData, violations: list[Violation],
           orphans: Orphans) -> Settled:
    """Clear or delete the orphans (before the keys are added); what was done, in words, with
    the rows each statement really changed (one table's orphans may be another's too)."""
    done: list[str] = []
    cleared: list[Cleared] = []
    emptied: set[str] = set()
    for v in violations:
        if v.kind != "orphans":
            continue
        table = metadata.tables[v.table]
        if orphans == Orphans.null:
            cleared += _clearing(conn, table, v)
            changed = conn.execute(update(table).where(v.where)
                                   .values({c: None for c in v.columns})).rowcount
            done.append(f"set {v.table}.{', '.join(v.columns)} to NULL in "
                        f"{count(changed, 'row')}")
        elif orphans == Orphans.delete:
            changed = conn.execute(delete(table).where(v.where)).rowcount
            done.append(f"deleted {count(changed, 'row')} of {v.table}")
            if changed:
                emptied.add(v.table)
    if conn.dialect.name == "sqlite":
        done += _on_delete(conn, metadata, emptied)
    return Settled(done, cleared)


def _clearing(conn: Connection, table: Table, v: Violation) -> list[Cleared]:
    """The rows whose reference is about to be cleared, with the values they hold now."""
    key = list(table.primary_key.columns) or list(table.columns)[:1]
    columns = [table.c[c] for c in v.columns]
    rows = conn.execute(select(*key, *columns).where(v.where).order_by(*key))
    return [Cleared(table.name,
                    {c.name: str(value) for c, value in zip(key, row[:len(key)], strict=True)},
                    {c.name: str(value) for c, value in zip(columns, row[len(key):],
                                                            strict=True)})
            for row in rows]


def _on_delete(conn: Connection, metadata: MetaData, deleted_from: set[str]) -> list[str]:
    """SQLite: what each key's ON DELETE rule would have done to the rows that referenced the
    deleted ones. The repair's connection runs with foreign keys off (SQLite rebuilds tables
    that way), so the rules must be applied here, table by table, until nothing changes.
    (PostgreSQL applies them itself.) Rows of other tables are never touched."""
    done: list[str] = []
    while deleted_from:
        parents, deleted_from = deleted_from, set()
        for table in metadata.sorted_tables:
            for fk in table.foreign_key_constraints:
                if fk.referred_table.name not in parents:
                    continue
                rule = (fk.ondelete or "NO ACTION").upper()
                found = _orphans(conn, fk, parent_exists=True)
                if found is None or rule not in ("CASCADE", "SET NULL"):
                    continue  # NO ACTION / RESTRICT: the key check refuses, naming the table
                if rule == "CASCADE":
                    changed = conn.execute(delete(table).where(found.where)).rowcount
                    done.append(f"deleted {count(changed, 'row')} of {table.name} (ON DELETE "
                                f"CASCADE from {fk.referred_table.name})")
                    deleted_from.add(table.name)
                else:
                    changed = conn.execute(update(table).where(found.where).values(
                        {c: None for c in found.columns})).rowcount
                    done.append(f"set {table.name}.{', '.join(found.columns)} to NULL in "
                                f"{count(changed, 'row')} (ON DELETE SET NULL from "
                                f"{fk.referred_table.name})")
    return done


def add_not_valid(conn: Connection, fk: ForeignKeyConstraint) -> None:
    """PostgreSQL: the key guards new rows at once; the old rows wait for VALIDATE."""
    ddl = str(AddConstraint(fk).compile(dialect=conn.dialect))
    conn.exec_driver_sql(f"{ddl} NOT VALID")


def not_valid(conn: Connection) -> list[tuple[str, str]]:
    """(table, constraint) of each constraint added NOT VALID and not validated since."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.execute(text(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE NOT convalidated AND connamespace = current_schema()::regnamespace "
        "ORDER BY 1, 2"))
    return [(str(t), str(c)) for t, c in rows]

