"""The schema toolkit's translation of database errors (SQLSTATE) into SchemaErrors."""

from __future__ import annotations

import re
import shlex

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from workspaces.errors import SchemaError

# SQLSTATE -> (code, what happened, what to do). The database's own text follows as `detail`.
_SQLSTATES: dict[str, tuple[str, str, str]] = {
    "42501": (
        "permission_denied",
        "the database role lacks a privilege it needs (often CREATE on the schema)",
        "grant it (for example `GRANT CREATE ON SCHEMA public TO <role>`) or run as the owner",
    ),
    "42P01": (
        "undefined_table",
        "a table it refers to does not exist",
        "workspaces db status  # says what is missing and the command that restores it",
    ),
    "42P07": (
        "duplicate_table",
        "an object it creates already exists",
        "workspaces db status  # says what exists and the command that completes it",
    ),
    "42710": (
        "duplicate_object",
        "an object it creates already exists",
        "workspaces db status  # says what exists and the command that completes it",
    ),
    "42701": (
        "duplicate_column",
        "a column it adds already exists",
        "workspaces db status  # says what exists and the command that completes it",
    ),
    "23503": (
        "foreign_key_violation",
        "existing rows violate a foreign key",
        "fix or delete the rows that point at missing parents, then retry",
    ),
    "23505": (
        "unique_violation",
        "existing rows violate a unique constraint",
        "remove the duplicate rows, then retry",
    ),
    "55P03": (
        "lock_not_available",
        "a table it needs is locked by another session",
        "retry when the long transaction holding the lock has finished",
    ),
    "57014": (
        "statement_timeout",
        "a statement ran past the statement timeout",
        "retry at a quieter time or raise statement_timeout for the deploy role",
    ),
    "28000": (
        "authentication_failed",
        "the database refused the login",
        "check the user name in DATABASE_URL and the server's pg_hba.conf",
    ),
    "28P01": (
        "authentication_failed",
        "the database refused the password",
        "check the user, and the password (PGPASSWORD, ~/.pgpass or the database URL)",
    ),
    "3D000": (
        "database_missing",
        "the database named in the URL does not exist",
        "create it (`createdb <name>`) or fix the database URL (DATABASE_URL or --database-url)",
    ),
}

# Errors raised while connecting often carry no SQLSTATE; their text is stable across versions.
# (pattern searched in the lower-cased message, code, what happened, what to do)
_CONNECTION_HINTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "password authentication failed",
        "authentication_failed",
        "the database refused the password",
        "check the user, and the password (PGPASSWORD, ~/.pgpass or the database URL)",
    ),
    (
        r'role ".*" does not exist',
        "authentication_failed",
        "the database refused the login: no such role",
        "check the user name in the database URL (DATABASE_URL or --database-url)",
    ),
    (
        r'database ".*" does not exist',
        "database_missing",
        "the database named in the URL does not exist",
        "create it (`createdb <name>`) or fix the database URL (DATABASE_URL or --database-url)",
    ),
    (
        "connection refused",
        "connection_refused",
        "nothing is listening at the database address",
        "start the database, or fix the host and port of the database URL",
    ),
    (
        "could not translate host name|failed to resolve host|name or service not known",
        "unknown_host",
        "the database host name does not resolve",
        "fix the host in the database URL (DATABASE_URL or --database-url)",
    ),
    (
        "no such file or directory",
        "connection_refused",
        "no database server socket at that path",
        "start the database or fix the host in the database URL (DATABASE_URL or --database-url)",
    ),
    (
        "unable to open database file",
        "sqlite_open_failed",
        "the SQLite file cannot be opened",
        "check that the folder exists and is writable",
    ),
    (
        "readonly database",
        "permission_denied",
        "the SQLite file is read-only",
        "make the file and its folder writable by this user",
    ),
    (
        "database is locked",
        "lock_timeout",
        "another process holds the SQLite database",
        "retry when it has finished, or raise --lock-timeout",
    ),
    (
        "timeout expired",
        "connection_timeout",
        "the database did not answer in time",
        "check that the server is up and reachable",
    ),
)


def sqlstate_of(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None


def database_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return " ".join(text.split())


# Query parameters that carry a secret: never part of a printed command.


def libpq_url(url: URL) -> str:
    """The database as psql and the other PostgreSQL programs take it, without any password
    (they read PGPASSWORD or ~/.pgpass)."""
    from workspaces.logs import shown_url

    return shown_url(url.set(drivername="postgresql").render_as_string(hide_password=False)).paste


def _createdb(url: URL) -> str | None:
    """`createdb` for the database a PostgreSQL URL names, on its server, as its user."""
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    host = url.host or url.query.get("host")
    parts = ["createdb"]
    for flag, value in (("-h", host), ("-p", url.port), ("-U", url.username)):
        if value:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(part) for part in [*parts, url.database])


def translate(exc: SQLAlchemyError, *, doing: str, migration_id: str | None = None,
              url: URL | None = None) -> SchemaError:
    """Turn a database exception into one sentence naming what failed, why, and the next step
    (`url`: the database, where the step is a command for it)."""
    state = sqlstate_of(exc)
    detail = database_message(exc)
    where = f"migration {migration_id}" if migration_id else doing
    matched = _SQLSTATES.get(state or "") or next(
        ((code, why, fix) for pattern, code, why, fix in _CONNECTION_HINTS
         if re.search(pattern, detail.lower())), None)
    if matched:
        code, why, fix = matched
        if migration_id:
            fix = fix.replace("<id>", migration_id)
        create = _createdb(url) if url is not None and code == "database_missing" else None
        if create:
            fix = f"{create}  # creates it, empty\nOr fix the database URL."
        return SchemaError(code, f"{where} failed: {why}.", fix=fix, detail=detail)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return SchemaError(
            "connection_lost",
            f"{where} failed: the connection to the database was lost.",
            fix="check the database server, then rerun the command",
            detail=detail,
        )
    return SchemaError(
        "database_error",
        f"{where} failed: the database reported an error.",
        fix="workspaces db status  # shows the state; the database's words are below",
        detail=detail,
    )
