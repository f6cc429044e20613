"""Reads on the API's hot paths, sent straight through asyncpg when that changes nothing.

`await rows.fetch(conn, STATEMENT, params)` returns the statement's rows as SQLAlchemy would
(`(await conn.execute(STATEMENT, params)).all()`), read by attribute (`row.email`). On
PostgreSQL, for a SELECT on an autocommit connection (a GET request's), it compiles the
statement once and hands the SQL and its values to the driver connection the request already
holds; everywhere else (SQLite, a transaction, a statement whose types convert values) it is
SQLAlchemy's own `execute`.

Why: SQLAlchemy's async execution costs about 80 microseconds of CPU per statement on top of
asyncpg's own work (its greenlet hops, execution context and result objects), as much as the
driver's, on requests that send two statements (docs/benchmarks.md, issue 22). The statement
and its SQL stay SQLAlchemy's: the same constant serves PostgreSQL and SQLite, and the SQL
sent is the one SQLAlchemy would send.

What stays the same, and how:
- Values: the statement is compiled for the connection's dialect, and it takes this path only
  when no bind or result type of it processes values for that dialect (asyncpg's own decoding
  is then what SQLAlchemy returns too); an expanding IN or a post-compile parameter takes
  SQLAlchemy's path.
- Errors: when the driver raises, the statement is run again through SQLAlchemy, which raises
  what every other statement raises and handles it as it always does (a connection found dead
  invalidates the pool, the request answers 503 `database_unavailable`). A SELECT on an
  autocommit connection changes nothing, so running it again is safe.
- A transaction pooler (DATABASE_POOLING=transaction): the driver's statement cache is off on
  those connections (`db.asyncpg_args`), so nothing named outlives the round trip.

Only for statements built once, at import (module constants): the compiled form is kept per
statement object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql import Select

KEPT = 512  # compiled statements kept; more means statements are being built per call
# The names asyncpg's Record answers itself: a column named so would be shadowed.
_RECORD_ATTRIBUTES = frozenset({"get", "keys", "values", "items"})


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...]
    compiled: Any  # SQLAlchemy's Compiled, for construct_params


_compiled: dict[int, tuple[Any, _Compiled | None]] = {}  # id(statement) -> (statement, ...)
# Called with the SQL and the values of each statement sent this way, as SQLAlchemy's
# `before_cursor_execute` is for the others: the benchmark's capture (bench/statements.py).
WATCHERS: list[Callable[[str, tuple[Any, ...]], None]] = []


async def fetch(conn: AsyncConnection, statement: Select[Any], params: Mapping[str, Any]
                ) -> Sequence[Any]:
    """The rows of a SELECT built once (a module constant), each read by attribute."""
    sync = conn.sync_connection
    if (sync is not None and conn.dialect.driver == "asyncpg"
            and sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT"):
        ready = _compile(statement, conn.dialect)
        if ready is not None:
            driver: Any = sync.connection.driver_connection
            values = ready.compiled.construct_params(params)
            positional = tuple(values[name] for name in ready.positions)
            for watcher in WATCHERS:
                watcher(ready.sql, positional)
            try:
                found: Sequence[Any] = await driver.fetch(ready.sql, *positional,
                                                          record_class=_record_class())
                return found
            except Exception:  # noqa: S110 (raised again below, as SQLAlchemy raises it)
                pass
    result = await conn.execute(statement, params)
    every: Sequence[Any] = result.all()
    return every


async def fetch_first(conn: AsyncConnection, statement: Select[Any],
                      params: Mapping[str, Any]) -> Any | None:
    """The first row of `fetch`, or None."""
    found = await fetch(conn, statement, params)
    return found[0] if found else None


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled | None:
    kept = _compiled.get(id(statement))
    if kept is not None and kept[0] is statement:
        return kept[1]
    compiled = statement.compile(dialect=dialect)
    binds = compiled.binds.values()
    plain = (
        compiled.positiontup is not None
        and not compiled.post_compile_params
        and not compiled.literal_execute_params
        and not any(bind.expanding or bind.type._cached_bind_processor(dialect) is not None
                    for bind in binds)
        and not any(column.type._cached_result_processor(dialect, None) is not None
                    or column.key in _RECORD_ATTRIBUTES for column in statement.selected_columns)
    )
    ready = _Compiled(str(compiled), tuple(compiled.positiontup or ()), compiled) \
        if plain else None
    if len(_compiled) < KEPT:
        _compiled[id(statement)] = (statement, ready)
    return ready


@cache
def _record_class() -> type:
    """asyncpg's Record, also read by attribute (`row.email`), as SQLAlchemy's rows are."""
    import asyncpg  # type: ignore[import-untyped]

    class Row(asyncpg.Record):  # type: ignore[misc]
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    return Row
