"""The schema status as a serving process reads it: for /readyz, /metrics and the schema guard.

A worker asks for the status every few seconds and nearly always hears "up to date". It reads
the quick status (schema/verified.py) through the driver it serves with (asyncpg; SQLite's
sqlite3 in a thread), and builds the toolkit, which loads Alembic and psycopg, only when the
quick status cannot answer (drift, a pending migration, a database that does not answer): on a
schema `db deploy` verified, a worker never holds them (docs/benchmarks.md, issue 22). The
answers are the toolkit's own: the quick report is the full one (tests/schema), and anything
else is the full one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from workspaces.db import display_url
from workspaces.schema.revisions import PACKAGED_VERSIONS, MigrationSet, read_quickly
from workspaces.schema.verified import quick_status, quick_status_async

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

    from workspaces.schema.report import Report
    from workspaces.schema.revisions import Migration
    from workspaces.schema.toolkit import Toolkit
    from workspaces.settings import Pooling

T = TypeVar("T")

# As the toolkit's status reads name themselves: `db deploy` does not count them as clients.
APPLICATION_NAME = "workspaces db status"


class ServingStatus:
    """The status of one database for the migrations of this code, read without blocking the
    event loop; `report()` answers what `Toolkit.status()` answers, or raises what it raises."""

    def __init__(self, url: URL, versions_dir: Path | None, *, pooling: Pooling) -> None:
        self.url = url
        self.versions_dir = versions_dir
        self.pooling = pooling
        self._toolkit: Toolkit | None = None
        self._making = threading.Lock()  # made in the threads of the full status, the guard
        self._engine: AsyncEngine | None = None
        self._read_files: tuple[object, list[Migration] | None] | None = None
        migrations = self._revisions()
        if migrations is None:  # unusual revisions (or none): Alembic's reading names why
            migrations = self.toolkit.migrations.migrations
        self.migrations: list[Migration] = migrations

    @property
    def toolkit(self) -> Toolkit:
        """The toolkit over this database, made on first use (it reads the revisions with
        Alembic and connects with psycopg)."""
        with self._making:
            if self._toolkit is None:
                from workspaces.schema.toolkit import Toolkit

                self._toolkit = Toolkit(self.url, MigrationSet(self.versions_dir))
            return self._toolkit

    async def report(self) -> Report:
        """The schema status; a SchemaError when the database cannot be read."""
        report = await self.quick()
        if report is None:
            report = await asyncio.to_thread(lambda: self.toolkit.status(quick=False))
        return report

    async def quick(self) -> Report | None:
        """The quick status (schema/verified.py); None: take the full way."""
        if self.url.get_backend_name() != "postgresql":
            return await asyncio.to_thread(
                quick_status, self.url.render_as_string(hide_password=False), self.versions_dir)
        try:
            connection = await self._connect()
        except Exception:  # the full way says why it cannot connect
            return None
        try:
            return await quick_status_async(connection, display_url(self.url),
                                            self._revisions())
        except Exception:  # an odd ledger, a permission: the full way explains
            return None
        finally:
            connection.terminate()

    async def _connect(self) -> Any:
        """A plain asyncpg connection, reached as the server reaches the database (the
        dialect's reading of the URL); nothing prepared outlives its query, so it works
        through a transaction pooler too. SQLAlchemy's own connection would first set up its
        JSON codecs, a round trip the quick status does not need."""
        import asyncpg  # type: ignore[import-untyped]
        from sqlalchemy.dialects.postgresql.asyncpg import dialect

        from workspaces.db import asyncpg_target

        target, extra = asyncpg_target(self.url)
        args, params = dialect().create_connect_args(target)  # type: ignore[no-untyped-call]
        params = {**params, "timeout": 10, **extra, "statement_cache_size": 0,
                  "server_settings": {"application_name": APPLICATION_NAME}}
        return await asyncpg.connect(*args, **params)

    def _revisions(self) -> list[Migration] | None:
        """`read_quickly` of the revisions, read again whenever a file of the folder changed
        (its name, size or modification time), as Python tells a stale .pyc: parsing them all
        on every probe would be most of its CPU, on the event loop."""
        folder = self.versions_dir or PACKAGED_VERSIONS
        try:
            files = tuple(sorted((path.name, *_size_and_time(path))
                                 for path in folder.glob("*.py")))
        except OSError:  # a file gone meanwhile: read them all again
            files = None
        if files is None or self._read_files is None or self._read_files[0] != files:
            self._read_files = (files, read_quickly(self.versions_dir))
        return self._read_files[1]

    async def read(self, read: Callable[[Connection], T]) -> T:
        """`read` on a read-only connection of its own (not one of the requests' pool), in a
        transaction given up afterwards; raises SQLAlchemyError, or OSError for a database
        that cannot be reached (asyncpg's connect errors are not SQLAlchemy's)."""
        if self.url.get_backend_name() != "postgresql":
            return await asyncio.to_thread(self._read_sqlite, read)
        async with self._async_engine().connect() as conn:
            readonly = await conn.execution_options(postgresql_readonly=True)
            return await readonly.run_sync(read)

    def _read_sqlite(self, read: Callable[[Connection], T]) -> T:
        from workspaces.db import create_sync_engine

        engine = create_sync_engine(self.url, read_only=True, busy_timeout=5)
        try:
            with engine.connect() as conn:
                return read(conn)
        finally:
            engine.dispose()

    def _async_engine(self) -> AsyncEngine:
        """asyncpg as the server connects (db.create_app_engine), without a pool: each read
        opens a connection and closes it, as the toolkit's reads do."""
        if self._engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine
            from sqlalchemy.pool import NullPool

            from workspaces.db import asyncpg_args, asyncpg_target

            target, extra = asyncpg_target(self.url)
            args = asyncpg_args(self.pooling) | extra
            args["server_settings"] = {**args["server_settings"],
                                       "application_name": APPLICATION_NAME}
            self._engine = create_async_engine(target, poolclass=NullPool, connect_args=args,
                                               hide_parameters=True)
        return self._engine


def _size_and_time(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_size, found.st_mtime_ns
