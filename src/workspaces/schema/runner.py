"""Running one revision's upgrade or downgrade on a connection, and rendering its SQL offline."""

from __future__ import annotations

import io
from typing import Any

from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from workspaces.schema.revisions import Migration


def run_migration(conn: Connection, migration: Migration, direction: str) -> None:
    """Execute `upgrade` or `downgrade` inside the caller's transaction."""
    context = MigrationContext.configure(connection=conn)
    with Operations.context(context):
        getattr(migration.module, direction)()


def render_sql(migration: Migration, direction: str, dialect: str) -> str:
    """The SQL a revision would run on this kind of database, without connecting to one."""
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name=dialect,
        opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
    )
    with Operations.context(context):
        getattr(migration.module, direction)()
    return buffer.getvalue()


def invoke_all(conn: Connection, operations: list[alembic_ops.MigrateOperation]) -> None:
    context = MigrationContext.configure(connection=conn)
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)


def render_operations(operations: list[alembic_ops.MigrateOperation], dialect: str) -> str:
    buffer = io.StringIO()
    context: Any = MigrationContext.configure(
        dialect_name=dialect, opts={"as_sql": True, "output_buffer": buffer}
    )
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)
    return buffer.getvalue()
