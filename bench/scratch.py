"""A scratch database for a benchmark: made on the given PostgreSQL server (TEST_DATABASE_URL,
else an embedded one), migrated, and dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from bench.cli_status import measure, server_url


@contextmanager
def scratch_database(database_url: str | None, prefix: str) -> Iterator[tuple[str, str]]:
    """(the new database's URL, the server's version), migrated to the newest schema."""
    server, embedded = server_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    database = server.set(database=name).render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        assert measure(["db", "deploy", "--database-url", database]).exit_code == 0
        yield database, version
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if embedded is not None:
            embedded.cleanup()  # type: ignore[attr-defined]
