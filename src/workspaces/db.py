"""Database URLs and engines: the CLI's sync engines (psycopg, sqlite3) are built here."""

from __future__ import annotations

import getpass
import os
import socket
import stat
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from workspaces.errors import SchemaError
from workspaces.logs import shown_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from workspaces.settings import Pooling


class Transactions(Protocol):
    """Short transactions on demand, for work that must not hold a connection throughout
    (hashing a password happens between a read and a write)."""

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

_PG_ALIASES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg",
               "postgresql+psycopg2"}
_SQLITE_ALIASES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


def parse_url(raw: str) -> URL:
    """Parse DATABASE_URL; accept the usual spellings of PostgreSQL and SQLite URLs."""
    try:
        url = make_url(raw.strip())
        url.port  # noqa: B018 (a port that is not a number raises here, not at connect)
    except (ArgumentError, ValueError):
        raise SchemaError(
            "bad_url",
            "The database URL is not valid.",
            fix="Use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db",
        ) from None
    if url.drivername in _PG_ALIASES:
        if raw.partition("?")[0].count("@") > 1 or "@" in (url.host or ""):
            # The first '@' ends the password, so the rest of it would be taken for the host
            # and repeated by the driver's "could not resolve" message: refuse before that.
            raise SchemaError(
                "bad_url",
                "The database URL has more than one '@' before its host: an '@' in the "
                "password (or user name) must be written %40.",
                fix="Write each @ of the password as %40: "
                    "postgresql://user:pa%40ss@host:5432/dbname")
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_ALIASES:
        return url.set(drivername="sqlite")
    raise SchemaError(
        "unsupported_database",
        f"Databases of kind {url.drivername!r} are not supported.",
        fix="Use a postgresql:// or sqlite:/// URL.",
    )


def display_url(url: URL) -> str:
    """The URL as people read it, shown or stored: its secrets [redacted] (logs.shown_url)."""
    return shown_url(url.render_as_string(hide_password=False)).read


def sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def private_sqlite_file(url: URL) -> None:
    """Create an SQLite database file 0600 (its owner only) before SQLite first opens it.

    SQLite gives the -wal, -shm and -journal files the database file's permissions, so they are
    private too. An existing file (and its companions) with group or other bits is tightened to
    its owner's bits, where it is ours to change.
    """
    path = sqlite_path(url)
    if path is None or url.query.get("uri"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:  # already there, or another process just created it
        for companion in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
            _tighten(companion)
    except OSError:
        pass  # a missing or read-only folder: SQLite reports it in its own words


def _tighten(path: Path) -> None:
    """Drop the group and other bits of a regular file of ours; leave anyone else's alone."""
    if os.name != "posix":
        return
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.geteuid():
            path.chmod(info.st_mode & 0o700)
    except (FileNotFoundError, PermissionError):
        pass


def whoami() -> str:
    """`user@host`, recorded in the ledger and shown to whoever waits for the deploy lock."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def create_sync_engine(
    url: URL,
    *,
    read_only: bool = False,
    sqlite_immediate: bool = False,
    busy_timeout: float = 60.0,
    application_name: str = "workspaces",
    sqlite_foreign_keys: bool = True,
) -> Engine:
    """An engine for one CLI command: no pooling, transactional DDL on SQLite too.

    Schema changes on SQLite run with foreign key enforcement off, as SQLite's documentation
    prescribes for table rebuilds (a DROP TABLE would otherwise cascade into child rows); the
    runner checks `PRAGMA foreign_key_check` before each commit instead.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only, immediate=sqlite_immediate,
                              busy_timeout=busy_timeout, foreign_keys=sqlite_foreign_keys)
    # Nothing here may outlive a transaction, so that `db status` and /readyz also work through
    # a transaction pooler: no server-side prepared statements (psycopg names its own after 5
    # runs of a query, and a pooler hands them to other clients), and read-only per transaction
    # (BEGIN READ ONLY), not as a startup option (PgBouncer refuses `options`).
    connect_args: dict[str, Any] = {
        "application_name": application_name[:63],
        "connect_timeout": 10,
        "prepare_threshold": None,
    }
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args,
                           hide_parameters=True)
    if read_only:
        @event.listens_for(engine, "connect")
        def _read_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.read_only = True

    return engine


def _sqlite_engine(
    url: URL, *, read_only: bool, immediate: bool, busy_timeout: float, foreign_keys: bool
) -> Engine:
    path = sqlite_path(url)
    connect_args: dict[str, Any] = {"timeout": busy_timeout}
    if not read_only:
        private_sqlite_file(url)
    if read_only and path is not None:
        # A URI with mode=ro never creates the file and never writes.
        url = url.set(database=f"file:{quote(str(path))}?mode=ro", query={"uri": "true"})
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args,
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so DDL
        # is transactional (sqlite3 would otherwise commit before each CREATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def asyncpg_args(pooling: Pooling) -> dict[str, Any]:
    """asyncpg's connect arguments; behind a transaction pooler, no prepared statement that
    outlives one round trip.

    SQLAlchemy prepares every statement, then executes it: two round trips. A named statement
    (asyncpg's cache, or SQLAlchemy's documented recipe of unique names) lives on the server
    connection that prepared it; between the two round trips of a statement outside a
    transaction (the app's reads are autocommit) a transaction pooler may hand the client
    another server connection, where the name does not exist ("prepared statement ... does not
    exist": 8 readers out of 8 failed through PgBouncer 1.18 with unique names). Unnamed
    statements (the name "") are parsed again in the round trip that runs them, as asyncpg
    does whenever its statement cache is off, and leave nothing behind on the server.
    """
    args: dict[str, Any] = {"server_settings": {"application_name": "workspaces serve"},
                            "timeout": 10}
    if pooling == "transaction":
        args |= {"statement_cache_size": 0, "prepared_statement_cache_size": 0,
                 "prepared_statement_name_func": _unnamed}
    return args


def _unnamed() -> str:
    return ""


def asyncpg_target(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL and extra connect arguments that reach `url`'s database through asyncpg, as
    libpq (the CLI's psycopg) would read the same URL.

    SQLAlchemy hands each query parameter to asyncpg's `connect()` as a keyword, which knows
    none of libpq's (`?sslmode=require` was a TypeError); asyncpg reads them, as libpq does,
    from a DSN, so the query travels there while host, user and database stay arguments.
    `connect_timeout` becomes asyncpg's `timeout`: asyncpg would send an unknown parameter to
    the server as a setting, which the server refuses.
    """
    query = {key: value[-1] if isinstance(value, tuple) else value
             for key, value in url.query.items()}
    extra: dict[str, Any] = {}
    seconds = query.pop("connect_timeout", None)
    if seconds is not None and seconds.strip().isdigit() and int(seconds) > 0:
        extra["timeout"] = int(seconds)
    if query:
        extra["dsn"] = "postgresql://?" + urlencode(query)
    return url.set(drivername="postgresql+asyncpg", query={}), extra


def create_app_engine(url: URL, *, pool_size: int = 8, pool_timeout: float = 10.0,
                      pooling: Pooling = "session") -> AsyncEngine:
    """The server's engine: asyncpg for PostgreSQL, aiosqlite for the SQLite default.

    On SQLite every transaction starts with BEGIN IMMEDIATE: one writer at a time, queued by
    the busy timeout, instead of "database is locked" when two readers both try to write.

    PostgreSQL connections are not pinged on checkout (asyncpg's ping is three round trips, as
    many as a whole read request's queries): a connection found dead answers that request with
    503 `database_unavailable` and invalidates the whole pool, so the next requests connect
    afresh.

    A request that finds no free connection within `pool_timeout` answers 503 `server_busy`.
    With `pooling="transaction"` it works through a transaction pooler (see `asyncpg_args`).
    """
    from sqlalchemy.ext.asyncio import create_async_engine  # not needed by the CLI: load late

    # Per worker process. More connections than this do not make one process faster (it is
    # CPU-bound first, see docs/benchmarks.md); they only use up max_connections. No overflow:
    # an overflow connection is closed when given back, so under sustained load the requests
    # beyond the pool each paid for a new connection (seen in py-spy as asyncpg connects).
    pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout,
            # A database error's message never carries the statement's values (password
            # hashes, addresses, names): it reaches the log when nothing else handles it.
            "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        private_sqlite_file(url)
        engine = create_async_engine(url.set(drivername="sqlite+aiosqlite"),
                                     connect_args={"timeout": 15}, **pool)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "checkout")
        def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            # SQLAlchemy resets a connection used in AUTOCOMMIT (the app's GETs) to the
            # sqlite3 module's implicit transactions on check-in; transactions here are ours.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # A read (AUTOCOMMIT) begins only logically: no BEGIN IMMEDIATE, so it takes no
            # write lock, and what it writes (a session's last use) is not rolled back.
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    target, extra = asyncpg_target(url)
    return create_async_engine(target, **pool, connect_args=asyncpg_args(pooling) | extra)


def dialect_insert(dialect_name: str) -> Any:
    """INSERT with the dialect's ON CONFLICT support (PostgreSQL and SQLite share the syntax)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
