"""What the commands share: their options, running work in one transaction, printing results
and errors."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from workspaces.errors import Error, commands, hints

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


_PASSWORD_NOTE = ("The password given in --database-url is not printed: export "  # noqa: S105
                  "PGPASSWORD (or add it to ~/.pgpass) before running these.")


@dataclass(frozen=True)
class Target:
    """How a printed next step names the database this command acted on, so that running it
    as printed, in the same shell, acts on the same database.

    A database named by DATABASE_URL (or the default) is found again by the next command
    without help; one named by `--database-url` is repeated without its password (or any
    other secret parameter, `logs.shown_url`): the commands read PGPASSWORD and ~/.pgpass
    (libpq's rules, which asyncpg follows too).
    """

    suffix: str = ""
    note: str | None = None

    @classmethod
    def of(cls, database_url: str | None) -> Target:
        if not database_url or database_url == os.environ.get("DATABASE_URL"):
            return cls()
        from workspaces.logs import shown_url

        try:  # as the operator spelled it (parse_url would name the driver)
            shown = shown_url(database_url)
        except ValueError:
            return cls()  # the command itself reports the bad URL
        return cls(f" --database-url {shlex.quote(shown.paste)}",
                   _PASSWORD_NOTE if shown.secret else None)

    def step(self, line: str) -> str:
        """`workspaces ...  # why` with the database added to the command, not the comment."""
        if not line.startswith("workspaces ") or line.startswith("workspaces db new"):
            return line
        command, hash_, why = line.partition("  # ")
        return f"{command.rstrip()}{self.suffix}{hash_}{why}"

    def steps(self, fix: str | None) -> list[str]:
        """Each command of a fix on its own line, ready to paste (its advice: `hints`)."""
        return [self.step(line) for line in commands(fix)]

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        """A status report's JSON with each problem's fix as pasteable `next` lines and its
        advice as `hint` lines (also where a command's document carries the report as
        `status`)."""
        for report in (body, body.get("status")):
            if isinstance(report, dict):
                for problem in report.get("problems", []):
                    if "fix" in problem:
                        fix = problem.pop("fix")
                        problem["next"], problem["hint"] = self.steps(fix), hints(fix)
        return body

    def print_steps(self, steps: list[str], *, indent: str = "", file: Any = None,
                    advice: list[str] | None = None) -> None:
        """`next:` the command to run, `or:` each alternative, `hint:` advice (no command)."""
        for number, step in enumerate(steps):
            print(f"{indent}{'next' if number == 0 else '  or'}: {step}", file=file)
        for line in advice or []:
            print(f"{indent}hint: {line}", file=file)
        if steps and self.note and any(s.startswith("workspaces ") for s in steps):
            print(f"{indent}({self.note})", file=file)


def fail(error: Error, as_json: bool, target: Target | None = None) -> NoReturn:
    target = target or Target()
    if as_json:
        body = {k: v for k, v in error.as_dict().items() if k != "fix"}
        print(json.dumps({"ok": False, "error": {**body, "next": target.steps(error.fix),
                                                 "hint": hints(error.fix)}}, indent=2))
    else:
        print(f"error[{error.code}]: {error.message}", file=sys.stderr)
        target.print_steps(target.steps(error.fix), indent="  ", file=sys.stderr,
                           advice=hints(error.fix))
        if error.detail:
            print(f"  database said: {error.detail}", file=sys.stderr)
    raise typer.Exit(int(error.exit_code))


def open_toolkit(database_url: str | None, as_json: bool, lock_timeout: float = 60.0, *,
                 writes: bool = False, say: Callable[[str], None] | None = None) -> Toolkit:
    """The toolkit on the database the command names (else DATABASE_URL, else the default).
    A command that `writes` says first which database it is about to change. What it says
    goes to stdout (stderr under --json), or to `say` (`serve`: the server's log)."""
    from workspaces.db import display_url, parse_url
    from workspaces.schema.revisions import MigrationSet
    from workspaces.schema.toolkit import Toolkit
    from workspaces.settings import get_settings

    settings = get_settings()
    url = parse_url(database_url or settings.database_url)
    migrations = MigrationSet(settings.workspaces_migrations_dir)

    def printed(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    say = say or printed
    if writes:
        say(f"Database: {display_url(url)}")
    return Toolkit(url, migrations, say=say, lock_timeout=lock_timeout)


def finish(result: Result, as_json: bool, target: Target | None = None) -> NoReturn:
    target = target or Target()
    fix = "\n".join(result.next)
    steps = target.steps(fix)
    if as_json:
        print(json.dumps({**target.report(result.data), "ok": result.exit_code == 0,
                          "exit_code": int(result.exit_code), "next": steps,
                          "hint": hints(fix)}, indent=2, default=str))
    else:
        for line in result.lines:
            print(line)
        target.print_steps(steps, advice=hints(fix))
    raise typer.Exit(int(result.exit_code))


@contextmanager
def guard(as_json: bool, target: Target | None = None) -> Iterator[None]:
    """Turn our errors (and only them) into the documented output and exit code."""
    try:
        yield
    except Error as error:
        fail(error, as_json, target)


def operate(database_url: str | None, as_json: bool,
            work: Callable[[AsyncConnection, Settings], Awaitable[T]]) -> T:
    """Run `work(conn, settings)` in one transaction on the server's engine; print errors
    (a fix's commands naming the same database)."""
    import asyncio

    from workspaces.db import create_app_engine, parse_url
    from workspaces.settings import get_settings

    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})

    async def run() -> T:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1,
                                   pooling=settings.database_pooling)
        try:
            async with engine.begin() as conn:
                return await work(conn, settings)
        finally:
            await engine.dispose()

    with guard(as_json, Target.of(database_url)):  # its next steps name this database
        return asyncio.run(run())


def show(data: Any, as_json: bool, line: str) -> None:
    """`line`, or with --json the data's fields and `ok` (a list's under `items`)."""
    from dataclasses import asdict, is_dataclass

    if as_json:
        if isinstance(data, list):
            body: dict[str, Any] = {"items": [asdict(d) for d in data]}
        else:
            body = asdict(data) if is_dataclass(data) and not isinstance(data, type) else data
        print(json.dumps({"ok": True, **body}, indent=2, default=str))
    else:
        print(line)


def done(database_url: str | None, as_json: bool, text: str, steps: list[str],
         advice: list[str] | None = None, **data: Any) -> None:
    """The result, then the commands to run next (`next:` lines; `"next"` in --json) and any
    advice (`hint:`)."""
    from dataclasses import asdict, is_dataclass

    target = Target.of(database_url)
    if as_json:
        body = {k: asdict(v) if is_dataclass(v) and not isinstance(v, type)
                else [asdict(i) for i in v] if isinstance(v, list) else v
                for k, v in data.items()}
        print(json.dumps({"ok": True, **body, "next": [target.step(s) for s in steps],
                          "hint": advice or []}, indent=2, default=str))
    else:
        print(text)
        target.print_steps([target.step(s) for s in steps], advice=advice)
