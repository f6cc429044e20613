"""A secret in the database URL (`user:pass@`, `?password=`, `?sslpassword=`) is never printed
or stored: one function (`logs.shown_url`) renders the URL for people."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.conftest import Cli, server_log, serving
from workspaces.cli import app
from workspaces.logs import shown_url
from workspaces.schema.ledger import HISTORY_TABLE

SECRET = "s3cret-Never-Shown"
# (as typed, what a person reads, what a pasted command carries)
FORMS = [
    (f"postgresql://u:{SECRET}@db.example:5432/app", "postgresql://u:[redacted]@db.example:5432/app",
     "postgresql://u@db.example:5432/app"),
    (f"postgresql://u@db.example/app?password={SECRET}",
     "postgresql://u@db.example/app?password=[redacted]", "postgresql://u@db.example/app"),
    (f"postgresql://u@db.example/app?sslpassword={SECRET}&sslmode=require",
     "postgresql://u@db.example/app?sslmode=require&sslpassword=[redacted]",
     "postgresql://u@db.example/app?sslmode=require"),
    (f"postgresql://u@db.example/app?oauth_client_secret={SECRET}",
     "postgresql://u@db.example/app?oauth_client_secret=[redacted]",
     "postgresql://u@db.example/app"),
    # percent-encoded: the name (libpq reads `pass%77ord` as `password`), the value, the user part
    (f"postgresql://u@db.example/app?pass%77ord={SECRET}",
     "postgresql://u@db.example/app?password=[redacted]", "postgresql://u@db.example/app"),
    ("postgresql://u@db.example/app?password=s%33cret-Never-Shown",
     "postgresql://u@db.example/app?password=[redacted]", "postgresql://u@db.example/app"),
    ("postgresql://u:s%33cret-Never-Shown@db.example/app",
     "postgresql://u:[redacted]@db.example/app", "postgresql://u@db.example/app"),
    (f"postgresql://u@db.example/app?PASSWORD={SECRET}",
     "postgresql://u@db.example/app?PASSWORD=[redacted]", "postgresql://u@db.example/app"),
    (f"postgresql://u@db.example/app?password={SECRET}&password={SECRET}2",
     "postgresql://u@db.example/app?password=[redacted]", "postgresql://u@db.example/app"),
    # both at once, and an '@' in the password (refused by parse_url, never shown in part)
    (f"postgresql+psycopg://u:{SECRET}@h/app?password={SECRET}",
     "postgresql+psycopg://u:[redacted]@h/app?password=[redacted]", "postgresql+psycopg://u@h/app"),
    (f"postgresql://u:Tr0ub@{SECRET}@h/app", "postgresql://u:[redacted]@h/app",
     "postgresql://u@h/app"),
    # what SQLAlchemy's rendering stored before: rendered again the same way
    (f"postgresql+psycopg://u:***@h/app?password={SECRET}",
     "postgresql+psycopg://u:[redacted]@h/app?password=[redacted]", "postgresql+psycopg://u@h/app"),
]


@pytest.mark.parametrize(("raw", "read", "paste"), FORMS)
def test_shown_url_hides_every_secret_form(raw: str, read: str, paste: str) -> None:
    shown = shown_url(raw)
    assert (shown.read, shown.paste, shown.secret) == (read, paste, True)
    assert shown_url(shown.read).read == shown.read  # what is stored reads the same again


@pytest.mark.parametrize("raw", [
    "postgresql://u@db.example:5432/app", "sqlite:///var/lib/ws.db",
    "postgresql://u@h/app?sslmode=verify-full&sslkey=/etc/ws/client.key&passfile=/etc/ws/pgpass",
    "postgresql://postgres:@/db?host=/tmp/pg-socket"])
def test_shown_url_keeps_what_is_no_secret(raw: str) -> None:
    shown = shown_url(raw)
    assert not shown.secret and "[redacted]" not in shown.read
    assert make_url(shown.read).query == make_url(raw).query  # sslkey's path stays visible
    assert make_url(shown.paste).query == make_url(raw).query


def _secret_url(url: str, form: str) -> str:
    parsed = make_url(url)
    if form == "user:pass@":
        return parsed.set(password=SECRET).render_as_string(hide_password=False)
    return parsed.update_query_dict({form: SECRET}).render_as_string(hide_password=False)


@pytest.mark.parametrize("form", ["user:pass@", "password"])
def test_no_output_of_the_cli_carries_the_secret(cli: Cli, form: str) -> None:
    if form == "user:pass@" and not cli.is_pg:
        pytest.skip("an SQLite URL has no user part")
    secret = Cli(_secret_url(cli.url, form), {})
    runs = [secret("db", "status"), secret("db", "status", "--json"), secret("db", "deploy"),
            secret("db", "deploy", "--json"), secret("db", "resolve", "--applied", "nope"),
            secret("db", "resolve", "--applied", "nope", "--json"), secret("db", "history"),
            secret("db", "history", "--json"), secret("db", "verify", "--json")]
    for run in runs:
        assert SECRET not in run.output
    first = runs[0].stdout.splitlines()
    assert first[0].startswith("Database: ") and "[redacted]" in first[0]
    assert runs[2].stdout.splitlines()[0] == f"Database: {first[0].split()[1]}"
    assert json.loads(runs[1].stdout)["database"] == first[0].split()[1]
    steps = [line.split("next: ", 1)[1] for run in runs for line in run.output.splitlines()
             if "next: workspaces" in line]
    assert steps and all("[redacted]" not in step and f"{form}=" not in step for step in steps)
    assert "export PGPASSWORD" in runs[0].stdout
    # The pasted command acts on the same database (trust auth: no password needed here).
    paste = shlex.split(runs[4].stderr.split("next: ", 1)[1].split("  #")[0])
    assert paste[:3] == ["workspaces", "db", "status"]
    assert CliRunner().invoke(app, paste[1:], env={}).exit_code == 0
    events = json.loads(runs[7].stdout)
    assert events["ok"] is True
    assert [e["command"] for e in events["events"]][:2] == ["deploy", "deploy"]
    assert {e["target"] for e in events["events"]} == {first[0].split()[1]}
    (target,) = {row[0] for row in cli.sql(f"SELECT target FROM {HISTORY_TABLE}")}
    assert target == first[0].split()[1]


def test_history_rows_holding_a_password_are_scrubbed_by_the_next_command_that_writes(
        cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    stored = [f"postgresql+psycopg://u@h/app?password={SECRET}",
              "postgresql+psycopg://u:***@h/app"]  # as SQLAlchemy's rendering stored them
    now = datetime.now(UTC).isoformat(sep=" ")
    for target in stored:
        cli.sql(f"INSERT INTO {HISTORY_TABLE} (command, outcome, started_at, finished_at, actor, "
                f"application, target) VALUES ('deploy', 'ok', '{now}', '{now}', 'old@host', "
                f"'workspaces 0.1.0', '{target}')")
    shown = cli("db", "history")
    assert shown.exit_code == 0 and SECRET not in shown.output  # not shown even before
    assert "(on postgresql+psycopg://u@h/app?password=[redacted])" in shown.stdout
    assert cli("db", "status").exit_code == 0  # reads only: nothing rewritten yet
    assert any(SECRET in str(row[0]) for row in cli.sql(f"SELECT target FROM {HISTORY_TABLE}"))
    assert cli("db", "deploy").exit_code == 0  # takes the lock
    targets = {str(row[0]) for row in cli.sql(f"SELECT target FROM {HISTORY_TABLE}")}
    assert {"postgresql+psycopg://u@h/app?password=[redacted]",
            "postgresql+psycopg://u:[redacted]@h/app"} <= targets
    assert not any(SECRET in t or "***" in t for t in targets)


def test_a_password_holding_an_at_sign_is_refused_before_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for url in (f"postgresql://postgres:Tr0ub@{SECRET}@127.0.0.1:5432/postgres",
                # a '?' in the password, before its '@': not a query yet
                f"postgresql://postgres:Tr0?b@{SECRET}@127.0.0.1:5432/postgres"):
        for args in (("db", "status"), ("db", "deploy", "--json"), ("db", "history")):
            run = Cli(url, {})(*args)
            assert run.exit_code == 1, run.output
            assert "bad_url" in run.output and "%40" in run.output
            assert SECRET not in run.output


def test_the_serve_banner_names_the_database_without_its_password(pg_url: str) -> None:
    url = _secret_url(pg_url, "password")
    Cli(url, {})("db", "deploy")
    with serving(["--database-url", url], {}) as (_, process):
        process.terminate()
        process.wait(timeout=20)
        log = server_log(process)
    assert SECRET not in log
    shown = make_url(pg_url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False)
    query = "&" if "?" in shown else "?"  # the embedded server's URL has ?host= already
    assert f"(database {shown}{query}password=[redacted])\n" in log  # its parenthesis closes
