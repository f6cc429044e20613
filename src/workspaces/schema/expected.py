"""What each migration should leave behind, worked out without a database.

Each revision's `upgrade()` runs against a recording `Operations` object: every operation it
invokes is folded into a small in-memory model instead of being executed. From the model we
build an SQLAlchemy `MetaData` for comparison with the live database, and we know which
migration created each table, column, index and constraint, so a difference can be blamed on
the migration responsible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)

from workspaces.errors import SchemaError
from workspaces.schema.revisions import Migration


@dataclass(frozen=True, order=True)
class ObjectKey:
    """One schema object: ('table', 'users', ''), ('column', 'users', 'email'), ('index', ...)."""

    kind: str
    table: str
    name: str = ""

    def describe(self) -> str:
        if self.kind == "table":
            return f"table {self.table}"
        if self.kind == "column":
            return f"column {self.table}.{self.name}"
        label = {"index": "index", "unique": "unique constraint", "foreign_key": "foreign key",
                 "check": "check constraint"}
        return f"{label.get(self.kind, self.kind)} {self.name} on {self.table}"


@dataclass
class _Fk:
    columns: list[str]
    referred_table: str
    referred_columns: list[str]
    options: dict[str, Any]


@dataclass
class _Index:
    columns: list[Any]
    unique: bool
    options: dict[str, Any]


@dataclass
class _Table:
    name: str
    columns: dict[str, Column[Any]] = field(default_factory=dict)
    primary_key: tuple[str | None, list[str]] = (None, [])
    uniques: dict[str, list[str]] = field(default_factory=dict)
    indexes: dict[str, _Index] = field(default_factory=dict)
    foreign_keys: dict[str, _Fk] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)


def _plain_column(column: Column[Any]) -> Column[Any]:
    """A detached copy without the shortcuts (index=, unique=, ForeignKey) kept elsewhere."""
    return Column(
        column.name,
        column.type,
        nullable=column.nullable,
        server_default=column.server_default,
        autoincrement=column.autoincrement,
    )


def _name(value: Any, fallback: str) -> str:
    return str(value) if value is not None and str(value) not in ("", "_NONE_NAME") else fallback


class SchemaModel:
    """Tables as the applied migrations leave them, and which migration made each object."""

    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}
        self.origin: dict[ObjectKey, str] = {}
        self.unmodelled: dict[str, list[str]] = {}
        self.touched: dict[str, set[str]] = {}  # migration id -> tables its operations change

    def apply(self, operation: alembic_ops.MigrateOperation, migration_id: str) -> None:
        table = getattr(operation, "table_name", None) or getattr(operation, "source_table", None)
        if table:
            self.touched.setdefault(migration_id, set()).add(str(table))
        handler = getattr(self, f"_on_{type(operation).__name__}", None)
        if handler is None:
            self.unmodelled.setdefault(migration_id, []).append(type(operation).__name__)
            return
        handler(operation, migration_id)

    def _table(self, name: str, migration_id: str) -> _Table:
        try:
            return self.tables[name]
        except KeyError:
            raise SchemaError(
                "unmodelled_migration",
                f"Migration {migration_id} alters table {name}, which no earlier migration "
                "creates.",
                fix="Check the revision's down_revision and the table name.",
            ) from None

    def _mark(self, key: ObjectKey, migration_id: str) -> None:
        self.origin[key] = migration_id

    def _forget(self, table: str, kind: str | None = None, name: str | None = None) -> None:
        for key in [k for k in self.origin if k.table == table]:
            if (kind is None or key.kind == kind) and (name is None or key.name == name):
                del self.origin[key]

    def _on_CreateTableOp(self, op: alembic_ops.CreateTableOp, mid: str) -> None:
        source = op.to_table()
        table = _Table(source.name)
        for column in source.columns:
            table.columns[column.name] = _plain_column(column)
            self._mark(ObjectKey("column", table.name, column.name), mid)
        pk = source.primary_key
        table.primary_key = (pk.name if isinstance(pk.name, str) else None, list(pk.columns.keys()))
        for constraint in source.constraints:
            if isinstance(constraint, UniqueConstraint):
                columns = list(constraint.columns.keys())
                name = _name(constraint.name, f"uq_{table.name}_{'_'.join(columns)}")
                table.uniques[name] = list(constraint.columns.keys())
                self._mark(ObjectKey("unique", table.name, name), mid)
            elif isinstance(constraint, ForeignKeyConstraint):
                self._add_fk(table, constraint, mid)
            elif isinstance(constraint, CheckConstraint) and constraint.name:
                table.checks[str(constraint.name)] = str(constraint.sqltext)
                self._mark(ObjectKey("check", table.name, str(constraint.name)), mid)
        for index in source.indexes:
            name = _name(index.name, f"ix_{table.name}_{'_'.join(c.name for c in index.columns)}")
            table.indexes[name] = _Index([c.name for c in index.columns], bool(index.unique), {})
            self._mark(ObjectKey("index", table.name, name), mid)
        self.tables[table.name] = table
        self._mark(ObjectKey("table", table.name), mid)

    def _add_fk(self, table: _Table, fk: ForeignKeyConstraint, mid: str) -> None:
        columns = [c.parent.name for c in fk.elements]
        referred = fk.elements[0].target_fullname.split(".")[0]
        name = _name(fk.name, f"fk_{table.name}_{'_'.join(columns)}_{referred}")
        options = {k: getattr(fk, k) for k in ("ondelete", "onupdate", "deferrable", "initially")
                   if getattr(fk, k)}
        table.foreign_keys[name] = _Fk(
            columns, referred, [e.target_fullname.split(".")[-1] for e in fk.elements], options
        )
        self._mark(ObjectKey("foreign_key", table.name, name), mid)

    def _on_DropTableOp(self, op: alembic_ops.DropTableOp, mid: str) -> None:
        self._table(op.table_name, mid)
        del self.tables[op.table_name]
        self._forget(op.table_name)

    def _on_RenameTableOp(self, op: alembic_ops.RenameTableOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        del self.tables[op.table_name]
        self._forget(op.table_name)
        table.name = op.new_table_name
        self.tables[table.name] = table
        self._mark(ObjectKey("table", table.name), mid)
        for column in table.columns:
            self._mark(ObjectKey("column", table.name, column), mid)

    def _on_AddColumnOp(self, op: alembic_ops.AddColumnOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        table.columns[op.column.name] = _plain_column(op.column)
        self._mark(ObjectKey("column", table.name, op.column.name), mid)
        for fk in op.column.foreign_keys:
            referred, _, referred_column = fk.target_fullname.rpartition(".")
            name = _name(fk.name, f"fk_{table.name}_{op.column.name}_{referred}")
            table.foreign_keys[name] = _Fk([op.column.name], referred, [referred_column], {})
            self._mark(ObjectKey("foreign_key", table.name, name), mid)

    def _on_DropColumnOp(self, op: alembic_ops.DropColumnOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        table.columns.pop(op.column_name, None)
        self._forget(table.name, "column", op.column_name)

    def _on_AlterColumnOp(self, op: alembic_ops.AlterColumnOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        column = table.columns[op.column_name]
        new = Column(
            op.modify_name or column.name,
            op.modify_type if op.modify_type is not None else column.type,
            nullable=column.nullable if op.modify_nullable is None else op.modify_nullable,
            server_default=column.server_default,
        )
        del table.columns[op.column_name]
        table.columns[new.name] = new
        self._forget(table.name, "column", op.column_name)
        self._mark(ObjectKey("column", table.name, new.name), mid)

    def _on_CreateIndexOp(self, op: alembic_ops.CreateIndexOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        name = _name(op.index_name, f"ix_{table.name}_{'_'.join(map(str, op.columns))}")
        table.indexes[name] = _Index(list(op.columns), bool(op.unique), dict(op.kw))
        self._mark(ObjectKey("index", table.name, name), mid)

    def _on_DropIndexOp(self, op: alembic_ops.DropIndexOp, mid: str) -> None:
        table = self._table(str(op.table_name), mid)
        table.indexes.pop(str(op.index_name), None)
        self._forget(table.name, "index", str(op.index_name))

    def _on_CreateUniqueConstraintOp(
        self, op: alembic_ops.CreateUniqueConstraintOp, mid: str
    ) -> None:
        table = self._table(op.table_name, mid)
        name = _name(op.constraint_name, f"uq_{table.name}_{'_'.join(op.columns)}")
        table.uniques[name] = list(op.columns)
        self._mark(ObjectKey("unique", table.name, name), mid)

    def _on_CreateForeignKeyOp(
        self, op: alembic_ops.CreateForeignKeyOp, mid: str
    ) -> None:
        table = self._table(op.source_table, mid)
        name = _name(op.constraint_name, f"fk_{table.name}_{'_'.join(op.local_cols)}_"
                     f"{op.referent_table}")
        options = {k: v for k, v in op.kw.items() if k in ("ondelete", "onupdate") and v}
        table.foreign_keys[name] = _Fk(
            list(op.local_cols), op.referent_table, list(op.remote_cols), options
        )
        self._mark(ObjectKey("foreign_key", table.name, name), mid)

    def _on_CreateCheckConstraintOp(
        self, op: alembic_ops.CreateCheckConstraintOp, mid: str
    ) -> None:
        self._table(op.table_name, mid).checks[str(op.constraint_name)] = str(op.condition)
        self._mark(ObjectKey("check", op.table_name, str(op.constraint_name)), mid)

    def _on_DropConstraintOp(self, op: alembic_ops.DropConstraintOp, mid: str) -> None:
        table = self._table(op.table_name, mid)
        name = str(op.constraint_name)
        for mapping, kind in ((table.uniques, "unique"), (table.foreign_keys, "foreign_key"),
                              (table.checks, "check")):
            if name in mapping:
                del mapping[name]
                self._forget(table.name, kind, name)

    def _on_BulkInsertOp(self, op: alembic_ops.BulkInsertOp, mid: str) -> None:
        """Data, not schema: nothing to model."""

    def _on_CreateTableCommentOp(self, op: Any, mid: str) -> None:
        """Comments are not compared."""

    _on_DropTableCommentOp = _on_CreateTableCommentOp

    def created_by(self, migration_id: str) -> list[ObjectKey]:
        """What the migration made that can tell whether it ran: not its checks, which are
        compared by name only, and a migration that redefines a check keeps its name."""
        return sorted(k for k, mid in self.origin.items()
                      if mid == migration_id and k.kind != "check")

    def to_metadata(self) -> MetaData:
        metadata = MetaData()
        for spec in self.tables.values():
            table = Table(spec.name, metadata, *(c._copy() for c in spec.columns.values()))
            pk_name, pk_columns = spec.primary_key
            if pk_columns:
                table.append_constraint(PrimaryKeyConstraint(*pk_columns, name=pk_name))
            for name, columns in spec.uniques.items():
                table.append_constraint(UniqueConstraint(*columns, name=name))
            for name, sql in spec.checks.items():
                table.append_constraint(CheckConstraint(sql, name=name))
            for name, fk in spec.foreign_keys.items():
                if fk.referred_table not in self.tables:
                    continue  # its parent is not in this model (rolled back): nothing to check
                table.append_constraint(ForeignKeyConstraint(
                    fk.columns, [f"{fk.referred_table}.{c}" for c in fk.referred_columns],
                    name=name, **fk.options,
                ))
            for name, index in spec.indexes.items():
                parts: list[Any] = [table.c[c] if isinstance(c, str) else c
                                    for c in index.columns]
                Index(name, *parts, unique=index.unique, _table=table, **index.options)
        return metadata


class _Recorder:
    """Runs a revision with the `op` proxy bound to operations that fold into a SchemaModel."""

    def __init__(self, model: SchemaModel) -> None:
        context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True})
        self._operations = Operations(context)
        self._model = model
        self._migration_id = ""
        # Every op.* call ends in `operations.invoke(operation)`: record instead of executing.
        self._operations.invoke = self._record  # type: ignore[method-assign,assignment]
        self._operations.batch_alter_table = self._batch  # type: ignore[method-assign,assignment]
        # A revision that asks for its context or connection does work in Python (a backfill)
        # that no recorded operation shows: note it, so nothing claims to redo it piecemeal.
        for name in ("get_context", "get_bind"):
            self._operations.__dict__[name] = self._python_step(getattr(self._operations, name))

    def _record(self, operation: alembic_ops.MigrateOperation) -> None:
        self._model.apply(operation, self._migration_id)

    def _python_step(self, method: Callable[[], Any]) -> Callable[[], Any]:
        def noted() -> Any:
            steps = self._model.unmodelled.setdefault(self._migration_id, [])
            if "a Python data step" not in steps:
                steps.append("a Python data step")
            return method()
        return noted

    @contextmanager
    def _batch(self, table_name: str, **_options: Any) -> Iterator[_BatchRecorder]:
        """`op.batch_alter_table` (SQLite's table rebuild): the same changes, one table."""
        yield _BatchRecorder(self._record, table_name)

    def run(self, migration: Migration, direction: str) -> None:
        self._migration_id = migration.id
        self._operations._install_proxy()
        try:
            getattr(migration.module, direction)()
        finally:
            self._operations._remove_proxy()


class _BatchRecorder:
    """Stands in for Alembic's BatchOperations: builds each op for its table and records it."""

    def __init__(self, record: Callable[[alembic_ops.MigrateOperation], None], table: str) -> None:
        self._record = record
        self._table = table

    def add_column(self, column: Column[Any], **_kw: Any) -> None:
        self._record(alembic_ops.AddColumnOp(self._table, column))

    def drop_column(self, column_name: str, **_kw: Any) -> None:
        self._record(alembic_ops.DropColumnOp(self._table, column_name))

    def alter_column(self, column_name: str, *, nullable: bool | None = None,
                     type_: Any = None, new_column_name: str | None = None, **_kw: Any) -> None:
        self._record(alembic_ops.AlterColumnOp(
            self._table, column_name, modify_nullable=nullable, modify_type=type_,
            modify_name=new_column_name,
        ))

    def create_index(self, index_name: str, columns: list[str], *, unique: bool = False,
                     **kw: Any) -> None:
        self._record(alembic_ops.CreateIndexOp(index_name, self._table, columns, unique=unique,
                                               **kw))

    def drop_index(self, index_name: str, **_kw: Any) -> None:
        self._record(alembic_ops.DropIndexOp(index_name, table_name=self._table))

    def create_unique_constraint(self, name: str, columns: list[str], **_kw: Any) -> None:
        self._record(alembic_ops.CreateUniqueConstraintOp(name, self._table, columns))

    def create_foreign_key(self, name: str, referent_table: str, local_cols: list[str],
                           remote_cols: list[str], **kw: Any) -> None:
        self._record(alembic_ops.CreateForeignKeyOp(name, self._table, referent_table,
                                                    local_cols, remote_cols, **kw))

    def create_check_constraint(self, name: str, condition: Any, **_kw: Any) -> None:
        self._record(alembic_ops.CreateCheckConstraintOp(name, self._table, condition))

    def drop_constraint(self, name: str, type_: str | None = None, **_kw: Any) -> None:
        self._record(alembic_ops.DropConstraintOp(name, self._table, type_))


def build_model(migrations: Iterable[Migration]) -> SchemaModel:
    """The schema left by running these migrations' upgrades, in order, on an empty database."""
    model = SchemaModel()
    recorder = _Recorder(model)
    for migration in migrations:
        recorder.run(migration, "upgrade")
    return model


def downgrade_operations(migration: Migration) -> list[alembic_ops.MigrateOperation]:
    """The operations a migration's `downgrade()` would run, recorded without running them."""
    return operations(migration, "downgrade")


def operations(migration: Migration, direction: str) -> list[alembic_ops.MigrateOperation]:
    """The operations `upgrade()` or `downgrade()` would run, recorded without running them."""
    recorded: list[alembic_ops.MigrateOperation] = []

    class _Collect(SchemaModel):
        def apply(self, operation: alembic_ops.MigrateOperation, migration_id: str) -> None:
            recorded.append(operation)

    _Recorder(_Collect()).run(migration, direction)
    return recorded


__all__ = ["ObjectKey", "SchemaModel", "build_model", "downgrade_operations", "operations"]
