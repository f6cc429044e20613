"""What the commands share: their options, running work in one transaction, printing results
and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from workspaces.errors import Error

if TYPE_CHECKING:  # imported where used: every command would pay for them at start-up
    from sqlalchemy.ext.asyncio import AsyncConnection

    from workspaces.schema.toolkit import Result, Toolkit
    from workspaces.settings import Settings

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL", show_envvar=True,
                 help="Database URL (default: sqlite:///workspaces.db)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document for machines.")]
LockTimeout = Annotated[
    float, typer.Option("--lock-timeout", min=0, help="Seconds to wait for the deploy lock.")
]


def fail(error: Error, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"ok": False, "error": error.as_dict()}, indent=2))
    else:
        print(f"error[{error.code}]: {error.message}", file=sys.stderr)
        if error.fix:
            print(f"  next: {error.fix}", file=sys.stderr)
        if error.detail:
            print(f"  database said: {error.detail}", file=sys.stderr)
    raise typer.Exit(int(error.exit_code))


def open_toolkit(database_url: str | None, as_json: bool, lock_timeout: float = 60.0, *,
                 writes: bool = False) -> Toolkit:
    """The toolkit on the database the command names (else DATABASE_URL, else the default).
    A command that `writes` says first which database it is about to change."""
    from workspaces.db import display_url, parse_url
    from workspaces.schema.revisions import MigrationSet
    from workspaces.schema.toolkit import Toolkit
    from workspaces.settings import get_settings

    settings = get_settings()
    url = parse_url(database_url or settings.database_url)
    migrations = MigrationSet(settings.workspaces_migrations_dir)

    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    if writes:
        say(f"Database: {display_url(url)}")
    return Toolkit(url, migrations, say=say, lock_timeout=lock_timeout)


def finish(result: Result, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"ok": result.exit_code == 0, "exit_code": int(result.exit_code),
                          **result.data}, indent=2, default=str))
    else:
        for line in result.lines:
            print(line)
    raise typer.Exit(int(result.exit_code))


@contextmanager
def guard(as_json: bool) -> Iterator[None]:
    """Turn our errors (and only them) into the documented output and exit code."""
    try:
        yield
    except Error as error:
        fail(error, as_json)


def operate(database_url: str | None, as_json: bool,
            work: Callable[[AsyncConnection, Settings], Awaitable[T]]) -> T:
    """Run `work(conn, settings)` in one transaction on the server's engine; print errors."""
    import asyncio

    from workspaces.db import create_app_engine, parse_url
    from workspaces.settings import get_settings

    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})

    async def run() -> T:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn, settings)
        finally:
            await engine.dispose()

    with guard(as_json):
        return asyncio.run(run())


def show(data: Any, as_json: bool, line: str) -> None:
    from dataclasses import asdict, is_dataclass

    if as_json:
        if isinstance(data, list):
            items: Any = [asdict(d) for d in data]
        else:
            items = asdict(data) if is_dataclass(data) and not isinstance(data, type) else data
        print(json.dumps(items, indent=2, default=str))
    else:
        print(line)


