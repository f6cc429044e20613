"""Running one revision's upgrade or downgrade on a connection, and rendering its SQL offline."""

from __future__ import annotations

import io
from typing import Any

from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.exc import IntegrityError

from workspaces.schema.revisions import Migration


def run_migration(conn: Connection, migration: Migration, direction: str) -> None:
    """Execute `upgrade` or `downgrade` inside the caller's transaction."""
    context = MigrationContext.configure(connection=conn)
    with Operations.context(context):
        getattr(migration.module, direction)()
    check_foreign_keys(conn)


def check_foreign_keys(conn: Connection) -> None:
    """SQLite runs schema changes with enforcement off: refuse to commit dangling references."""
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise IntegrityError(
            "PRAGMA foreign_key_check",
            None,
            Exception(f"FOREIGN KEY constraint failed: {len(broken)} row(s) in "
                      f"{', '.join(tables)} point at missing rows"),
        )


def render_sql(migration: Migration, direction: str, dialect: str, before: MetaData) -> str:
    """The SQL a revision would run on this kind of database, without connecting to one.

    `before` is the schema the revision starts from: batch operations (SQLite's table rebuild)
    copy their table from it instead of reflecting a live database.
    """
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name=dialect,
        opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
    )
    operations = Operations(context)
    batch_alter_table = operations.batch_alter_table

    def batch_from_model(table_name: str, **kw: Any) -> Any:
        if "copy_from" not in kw and table_name in before.tables:
            kw["copy_from"] = before.tables[table_name]
        return batch_alter_table(table_name, **kw)

    operations.batch_alter_table = batch_from_model  # type: ignore[method-assign,assignment]
    operations._install_proxy()
    try:
        getattr(migration.module, direction)()
    finally:
        operations._remove_proxy()
    return buffer.getvalue()


def invoke_all(conn: Connection, operations: list[alembic_ops.MigrateOperation]) -> None:
    context = MigrationContext.configure(connection=conn)
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)
    check_foreign_keys(conn)


def render_operations(operations: list[alembic_ops.MigrateOperation], dialect: str) -> str:
    buffer = io.StringIO()
    context: Any = MigrationContext.configure(
        dialect_name=dialect, opts={"as_sql": True, "output_buffer": buffer}
    )
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)
    return buffer.getvalue()
