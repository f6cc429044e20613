"""The quick status: `db status` on a schema verified by `db deploy` and unchanged since,
answered without SQLAlchemy or Alembic.

Why: a full status reads the revisions through Alembic, rebuilds the expected schema and has
Alembic compare it with the live catalogue. Importing them and comparing cold costs about
0.4 s of the command's 0.85 s, on every call of the deploy pipeline's gate, to say "up to
date" nearly every time.

How: `db deploy` ends by verifying the live schema against what the applied migrations create.
When that verification finds nothing at all, it records in `workspaces_schema_verified` a
fingerprint of the catalogue (sha256 over every column, index and constraint of the model's
tables, as the server itself spells them), which migrations were applied with which
checksums, and what each migration creates. `db status` first reads the ledger and that row
with the plain driver (psycopg, or sqlite3): if every migration of this code is applied with
its checksum, that set is the one verified, and the catalogue's fingerprint is unchanged, the
full comparison could only answer "up to date", so the report is built from the record.
Anything else (a pending or failed migration, a table dropped, a column altered, an index
added, a server that spells its catalogue differently after an upgrade, a URL this module
does not read, any error) takes the full way, which says what differs.

A server reads the same record through the driver it serves with (`quick_status_async`,
asyncpg), so that its workers load neither psycopg nor Alembic while the schema is verified.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workspaces.logs import shown_url
from workspaces.schema.report import APPLIED, ROLLED_BACK, Entry, MigrationState, Report
from workspaces.schema.revisions import Migration, read_quickly

if TYPE_CHECKING:
    from sqlalchemy import Connection

VERIFIED_TABLE = "workspaces_schema_verified"
LEDGER_TABLE = "workspaces_schema_ledger"  # as schema/ledger.py names it (a test checks)

# More than the comparison looks at (comments, identity, generation, collation, persistence):
# a change it would ignore only costs one full check, a change it would see must never be
# missed. Bump FORMAT when this changes: records of the old format then count for nothing.
FORMAT = 2
_PG_CATALOG = """
SELECT 'table', c.relname, c.relkind::text || ' ' || c.relpersistence::text || ' '
       || coalesce(obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY({tables})
UNION ALL
SELECT 'column', c.relname, a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
       || ' ' || a.attidentity::text || ' ' || a.attgenerated::text || ' '
       || a.attcollation::text
       || coalesce(' COMMENT ' || col_description(c.oid, a.attnum), '')
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname = ANY({tables})
UNION ALL
SELECT 'index', c.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY({tables})
UNION ALL
SELECT 'constraint', c.relname, k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY({tables})
"""
_LEDGER_COLUMNS = ("seq", "migration_id", "action", "outcome", "checksum", "started_at",
                   "finished_at", "rolled_back_at", "duration_ms", "error", "note", "applied_by")
_PG_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg",
               "postgresql+psycopg2"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


def catalog_fingerprint(cursor: Any, dialect: str, tables: Sequence[str]) -> str:
    """sha256 over the catalogue's own spelling of the tables' columns, indexes and
    constraints. `cursor` is a DB-API cursor of psycopg or sqlite3: deploy (through
    SQLAlchemy's connection) and the quick status (without it) run this same code."""
    if dialect == "postgresql":
        cursor.execute(_PG_CATALOG.format(tables="%(tables)s"), {"tables": list(tables)})
    else:
        marks = ",".join("?" * len(tables)) or "NULL"
        cursor.execute(f"SELECT type, tbl_name, name, coalesce(sql, '') FROM sqlite_master "
                       f"WHERE tbl_name IN ({marks})", list(tables))
    return _digest(cursor.fetchall())


def _digest(rows: Iterable[Sequence[Any]]) -> str:
    lines = sorted("\x1f".join(str(value) for value in row) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def applied_key(migrations: Iterable[Migration]) -> str:
    """One value for "these migrations, from these exact files, verified by this comparison"
    (this record format and the versions of the code and libraries that compare: a release
    whose comparison finds more does not trust a verification made by an older one)."""
    from importlib.metadata import version

    from workspaces import __version__

    lines = [f"format {FORMAT} workspaces {__version__} alembic {version('alembic')} "
             f"sqlalchemy {version('sqlalchemy')}", *(f"{m.id} {m.checksum}" for m in migrations)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def remember(conn: Connection, report: Report, tables: Iterable[str]) -> None:
    """Record a verification that found the live schema exactly as `report`'s applied
    migrations make it (deploy calls this only then). Inside the caller's transaction."""
    from sqlalchemy import text

    dbapi = conn.connection.dbapi_connection
    if dbapi is None:  # a closed connection: nothing verified to record
        return
    cursor = dbapi.cursor()
    try:
        fingerprint = catalog_fingerprint(cursor, conn.dialect.name, sorted(tables))
    finally:
        cursor.close()
    record = json.dumps({"tables": sorted(tables),
                         "creates": {m.migration.id: m.creates for m in report.migrations}})
    applied = [m.migration for m in report.migrations if m.state == APPLIED]
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {VERIFIED_TABLE} (id INTEGER PRIMARY KEY, "
                      "applied VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) NOT NULL, "
                      "record TEXT NOT NULL)"))
    conn.execute(text(f"DELETE FROM {VERIFIED_TABLE}"))
    conn.execute(text(f"INSERT INTO {VERIFIED_TABLE} (id, applied, fingerprint, record) "
                      "VALUES (1, :applied, :fingerprint, :record)"),
                 {"applied": applied_key(applied), "fingerprint": fingerprint,
                  "record": record})


def quick_status(raw_url: str, versions_dir: Path | None = None) -> Report | None:
    """The report of a database verified and unchanged since; None: take the full way."""
    try:
        target = _read_url(raw_url)
    except ValueError:  # a port that is no number...: the full way names the problem
        return None
    migrations = read_quickly(versions_dir)
    if target is None or not migrations:
        return None
    dialect, display, connect = target
    try:
        connection = connect()
    except Exception:  # the full way reports why it cannot connect
        return None
    try:
        return _report(connection, dialect, display, migrations)
    except Exception:  # an odd ledger, a permission: the full way explains
        return None
    finally:
        connection.close()


def _report(connection: Any, dialect: str, display: str,
            migrations: list[Migration]) -> Report | None:
    cursor = connection.cursor()
    holder = None
    if dialect == "postgresql":
        recorded = cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (VERIFIED_TABLE, LEDGER_TABLE)).fetchone()[0]
        server = "PostgreSQL " + _scalar(cursor, "SHOW server_version")
        from workspaces.schema.lock import HOLDER_SQL, describe_holder

        row = cursor.execute(HOLDER_SQL).fetchone()
        holder = describe_holder(tuple(row)) if row is not None else None
    else:
        recorded = cursor.execute(
            "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
            (VERIFIED_TABLE, LEDGER_TABLE)).fetchone()[0]
        server = "SQLite " + _scalar(cursor, "SELECT sqlite_version()")
    if not recorded:
        return None
    mark = "%s" if dialect == "postgresql" else "?"
    report = _compare_with_record(cursor, dialect, mark, display, server, migrations)
    if report is not None:
        report.in_progress = holder
    return report


def _scalar(cursor: Any, sql: str) -> str:
    return str(cursor.execute(sql).fetchone()[0])


def _compare_with_record(cursor: Any, dialect: str, mark: str, display: str, server: str,
                         migrations: list[Migration]) -> Report | None:
    row = cursor.execute(f"SELECT applied, fingerprint, record FROM {VERIFIED_TABLE} "
                         f"WHERE id = {mark}", (1,)).fetchone()
    if row is None:
        return None
    applied, fingerprint, record = row
    latest = _latest(cursor.execute(_LEDGER_SQL).fetchall())
    if not _history_verified(latest, applied, migrations):
        return None
    recorded = json.loads(record)
    if catalog_fingerprint(cursor, dialect, recorded["tables"]) != fingerprint:
        return None
    return _verified_report(display, server, migrations, latest, recorded)


_LEDGER_SQL = f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM {LEDGER_TABLE} ORDER BY seq"


def _latest(rows: Iterable[Sequence[Any]]) -> dict[str, Entry]:
    """The ledger's latest entry of each migration."""
    latest: dict[str, Entry] = {}
    for values in rows:
        entry = Entry(**dict(zip(_LEDGER_COLUMNS, _entry_values(values), strict=True)))
        latest[entry.migration_id] = entry
    return latest


def _history_verified(latest: dict[str, Entry], applied: str,
                      migrations: list[Migration]) -> bool:
    """Every migration of this code applied from its file, nothing else, and that set the
    one verified."""
    known = {m.id for m in migrations}
    if any(mid not in known and e.outcome != ROLLED_BACK for mid, e in latest.items()):
        return False  # history this code does not have: diverged
    if any(m.id not in latest or latest[m.id].outcome != APPLIED
           or latest[m.id].checksum != m.checksum for m in migrations):
        return False
    return applied == applied_key(migrations)


def _verified_report(display: str, server: str, migrations: list[Migration],
                     latest: dict[str, Entry], recorded: dict[str, Any]) -> Report:
    return Report(
        database=display, server=server, ledger_exists=True,
        migrations=[MigrationState(m, APPLIED, latest[m.id], True,
                                   creates=list(recorded["creates"].get(m.id, [])))
                    for m in migrations],
    )


async def quick_status_async(connection: Any, display: str,
                             migrations: list[Migration] | None) -> Report | None:
    """The quick status of PostgreSQL through an asyncpg connection (a server's own driver),
    in one read-only transaction as `quick_status` reads it, for the revisions
    `read_quickly` read; None: take the full way."""
    from workspaces.schema.lock import HOLDER_SQL, describe_holder

    if not migrations:
        return None
    async with connection.transaction(readonly=True):
        if not await connection.fetchval(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                VERIFIED_TABLE, LEDGER_TABLE):
            return None
        server = "PostgreSQL " + str(await connection.fetchval("SHOW server_version"))
        row = await connection.fetchrow(HOLDER_SQL)
        holder = describe_holder(tuple(row)) if row is not None else None
        row = await connection.fetchrow(
            f"SELECT applied, fingerprint, record FROM {VERIFIED_TABLE} WHERE id = $1", 1)
        if row is None:
            return None
        applied, fingerprint, record = row
        latest = _latest(await connection.fetch(_LEDGER_SQL))
        if not _history_verified(latest, applied, migrations):
            return None
        recorded = json.loads(record)
        catalogue = await connection.fetch(_PG_CATALOG.format(tables="$1"),
                                           list(recorded["tables"]))
        if _digest(catalogue) != fingerprint:
            return None
    report = _verified_report(display, server, migrations, latest, recorded)
    report.in_progress = holder
    return report


def _entry_values(values: Sequence[Any]) -> list[Any]:
    """SQLite hands back its stored text for times; SQLAlchemy's reading of them, naive."""
    return [datetime.fromisoformat(v) if isinstance(v, str) and i in (5, 6, 7) else v
            for i, v in enumerate(values)]


def _read_url(raw: str) -> tuple[str, str, Any] | None:
    """(dialect, the URL as `db status` shows it, a function that connects read-only); None
    when the full way must parse it. The plain spellings are read here; other PostgreSQL URLs
    (a socket folder in `?host=`, `?sslmode=`, quoted characters) by SQLAlchemy's parser,
    which costs its import (0.1 s) and still spares the comparison."""
    return _read_plain_url(raw) or _read_any_postgresql_url(raw)


def _read_any_postgresql_url(raw: str) -> tuple[str, str, Any] | None:
    from workspaces.db import display_url, parse_url
    from workspaces.errors import SchemaError

    try:
        url = parse_url(raw)
    except SchemaError:
        return None
    if url.get_backend_name() != "postgresql":
        return None
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return "postgresql", display_url(url), lambda: _connect_postgresql(conninfo)


def _connect_postgresql(conninfo: str) -> Any:
    import psycopg

    # Read-only per transaction (BEGIN READ ONLY) and nothing prepared on the server, as the
    # toolkit's engines: both hold through PgBouncer, which refuses `options`.
    connection = psycopg.connect(conninfo, connect_timeout=10,
                                 application_name="workspaces db status",
                                 prepare_threshold=None)
    connection.read_only = True
    return connection


def _read_plain_url(raw: str) -> tuple[str, str, Any] | None:
    parts = urlsplit(raw.strip())
    if parts.query or parts.fragment:
        return None
    if parts.scheme in _SQLITE_SCHEMES:
        database = raw.strip().split("://", 1)[1][1:] if "://" in raw else ""
        if not database or database == ":memory:" or parts.netloc:
            return None
        path = Path(database)
        if not path.is_file():
            return None

        def open_sqlite() -> Any:
            import sqlite3

            return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)

        return "sqlite", f"sqlite:///{database}", open_sqlite
    if parts.scheme not in _PG_SCHEMES:
        return None
    user, password, host = parts.username, parts.password, parts.hostname
    parts.port  # noqa: B018 (a port that is no number raises here: the full way names it)
    name = parts.path.lstrip("/")
    if not (host and name and _PLAIN.fullmatch(host) and _PLAIN.fullmatch(name)
            and (user is None or _PLAIN.fullmatch(user))
            and (password is None or ("%" not in password and "@" not in password))):
        return None
    display = shown_url(f"postgresql+psycopg://{parts.netloc}/{name}").read
    conninfo = f"postgresql://{parts.netloc}/{name}"
    return "postgresql", display, lambda: _connect_postgresql(conninfo)
