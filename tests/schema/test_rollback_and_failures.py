"""Rollback, failed migrations and the errors an operator meets: a code and a next step each."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import ALL, INIT, INVITES, Cli
from workspaces.cli import app
from workspaces.schema.ledger import HISTORY_TABLE, LEDGER_TABLE
from workspaces.schema.verified import VERIFIED_TABLE
from workspaces.settings import get_settings


def _seed_invites(cli: Cli, count: int) -> None:
    now = datetime.now(UTC).isoformat(sep=" ")
    user, workspace = uuid.uuid4().hex, uuid.uuid4().hex

    def fmt(hex_id: str) -> str:
        # SQLAlchemy's Uuid is a native uuid on PostgreSQL and 32 hex characters on SQLite.
        return f"'{uuid.UUID(hex_id)}'" if cli.is_pg else f"'{hex_id}'"

    statements = [
        f"INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES "
        f"({fmt(user)}, 'a@example.com', 'A', 'x', '{now}', '{now}')",
        f"INSERT INTO workspaces (id, name, slug, created_at) VALUES "
        f"({fmt(workspace)}, 'W', 'w', '{now}')",
    ]
    for n in range(count):
        statements.append(
            "INSERT INTO workspace_invites (id, workspace_id, email, role, token, status, "
            f"expires_at, created_at, created_by_user_id) VALUES ({fmt(uuid.uuid4().hex)}, "
            f"{fmt(workspace)}, 'p{n}@example.com', 'member', '{n:064d}', 'pending', '{now}', "
            f"'{now}', {fmt(user)})"
        )
    assert cli("db", "execute", "--stdin", stdin=";\n".join(statements) + ";").exit_code == 0


def test_rollback_shows_row_counts_and_needs_confirmation(cli: Cli) -> None:
    cli("db", "deploy")
    _seed_invites(cli, 3)
    refused = cli("db", "rollback", INVITES)  # no terminal and no --yes
    assert refused.exit_code == 1
    assert "drops table workspace_invites (3 rows)" in refused.stdout
    assert "error[confirmation_required]" in refused.stderr
    assert "workspace_invites" in cli.tables()

    run = cli("db", "rollback", INVITES, "--yes")
    assert run.exit_code == 0, run.output
    assert "\n".join(f"rolled back {m}" for m in reversed(ALL[1:])) in run.stdout
    assert "workspace_invites" not in cli.tables()
    assert cli("db", "status").exit_code == 2
    assert cli("db", "deploy").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_rollback_answered_no_changes_nothing_and_exits_1(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("db", "deploy")
    _seed_invites(cli, 1)
    # CliRunner's stdin is no terminal: make it one, so the question is asked and answered.
    monkeypatch.setattr("typer.testing._NamedTextIOWrapper.isatty", lambda _self: True,
                        raising=False)
    run = cli("db", "rollback", INVITES, stdin="n\n")
    assert run.exit_code == 1, run.output
    assert "drops table workspace_invites (1 row)" in run.stdout  # one row: no "1 rows"
    assert "Proceed?" in run.output and "Rollback cancelled; nothing changed." in run.stdout
    assert "runs " not in run.stdout.replace("runs SQL:", "")  # words, not operation names
    assert "workspace_invites" in cli.tables()
    events = json.loads(cli("db", "history", "--json").stdout)["events"]
    assert (events[-1]["command"], events[-1]["outcome"]) == ("rollback", "cancelled")


def test_rollback_json_plan_names_the_other_sessions(cli: Cli) -> None:
    cli("db", "deploy")
    import psycopg

    from workspaces.db import parse_url

    url = parse_url(cli.url)
    other = None
    if cli.is_pg:  # the application, connected while tables are about to go
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        other = psycopg.connect(plain, application_name="workspaces serve")
    try:
        run = cli("db", "rollback", "--yes", "--json")
    finally:
        if other is not None:
            other.close()
    assert run.exit_code == 0, run.output
    plan = json.loads(run.stdout)["plan"]
    warnings = [line for line in plan if line.startswith("warning:")]
    if cli.is_pg:
        assert warnings == [
            "warning: 1 other session connected to this database (workspaces serve): an "
            "application using what this drops will fail until it is deployed again; stop it "
            "first"]
    else:
        assert warnings == []
    assert "This will:" in run.stderr  # the plan for people goes to stderr with --json


def test_rollback_to_an_id_undoes_every_later_migration(cli: Cli) -> None:
    cli("db", "deploy")
    run = cli("db", "rollback", INIT, "--yes", "--json")
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout[run.stdout.index("{"):])
    assert doc["rolled_back"] == list(reversed(ALL))
    assert cli.tables() == {LEDGER_TABLE, HISTORY_TABLE, VERIFIED_TABLE}
    assert cli("db", "status").exit_code == 2


def test_rollback_refuses_when_the_objects_are_already_gone(cli: Cli) -> None:
    cli("db", "deploy", "--to", INVITES)
    cli.sql("DROP TABLE workspace_invites")
    run = cli("db", "rollback", "--yes")
    assert run.exit_code == 5
    assert "already missing" in run.stderr
    assert f"resolve --rolled-back {INVITES}" in run.stderr


def _add_revision(versions: Path, body: str, name: str = "20250201000000_broken") -> str:
    (versions / f"{name}.py").write_text(
        f'"""A later migration."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "{name}"\ndown_revision = "{ALL[-1]}"\n\n\n'
        f"def upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n"
        f'    op.drop_table("scratch_events")\n'
    )
    return name


# The second statement fails on both databases: the table exists already.
BROKEN = """    op.create_table("scratch_events", sa.Column("id", sa.Integer(), primary_key=True))
    op.create_table("workspaces", sa.Column("id", sa.Integer(), primary_key=True))"""
FIXED = """    op.create_table("scratch_events", sa.Column("id", sa.Integer(), primary_key=True))"""
DANGLING_FK = """    op.create_table(
        "scratch_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("no_such_table.id")),
    )"""


def test_a_failed_migration_leaves_nothing_behind_and_is_recorded(custom_cli: Cli,
                                                                   versions: Path) -> None:
    cli = custom_cli
    broken = _add_revision(versions, BROKEN)
    run = cli("db", "deploy")
    assert run.exit_code == 3, run.output
    assert f"migration {broken} failed" in run.stderr
    assert f"resolve --rolled-back {broken}" in run.stderr
    assert "already exists" in run.stderr
    assert "scratch_events" not in cli.tables()  # its first statement was rolled back too
    assert "workspace_invites" in cli.tables()  # earlier migrations stay applied

    rows = cli.sql(f"SELECT outcome, error, finished_at FROM {LEDGER_TABLE} "
                   f"WHERE migration_id = '{broken}'")
    assert len(rows) == 1 and rows[0][0] == "failed" and "workspaces" in str(rows[0][1])
    assert rows[0][2] is None

    status = cli("db", "status")
    assert status.exit_code == 3
    assert f"[failed] Migration {broken} failed" in status.stdout
    assert cli("db", "deploy").exit_code == 3  # blocked until resolved

    # The fix: correct the revision, mark the attempt rolled back, deploy again.
    _add_revision(versions, FIXED)
    resolved = cli("db", "resolve", "--rolled-back", broken)
    assert resolved.exit_code == 0, resolved.output
    assert "failed attempt cleared" in resolved.stdout
    assert cli("db", "deploy").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_a_foreign_key_to_a_missing_table_names_the_migration(pg_url: str, versions: Path) -> None:
    cli = Cli(pg_url, {"WORKSPACES_MIGRATIONS_DIR": str(versions)})
    broken = _add_revision(versions, DANGLING_FK)
    run = cli("db", "deploy")
    assert run.exit_code == 3
    assert f"error[undefined_table]: migration {broken} failed: a table it refers to does not " \
        "exist." in run.stderr
    assert 'relation "no_such_table" does not exist' in run.stderr
    assert "scratch_events" not in cli.tables()


def test_execute_reports_the_failing_statement_and_changes_nothing(cli: Cli) -> None:
    script = "CREATE TABLE scratch (id integer);\nINSERT INTO scratch VALUES (1);\n" \
             "INSERT INTO missing_table VALUES (1);\n"
    run = cli("db", "execute", "--stdin", stdin=script)
    assert run.exit_code == 1
    assert "Statement 3 of 3 failed" in run.stderr
    assert "missing_table" in run.stderr
    assert "scratch" not in cli.tables()


def test_execute_from_a_file_and_argument_errors(cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "fix.sql"
    script.write_text("-- a comment\nCREATE TABLE scratch (id integer);\n")
    run = cli("db", "execute", "--file", str(script))
    assert run.exit_code == 0
    assert "Ran 1 statement(s)" in run.stdout
    assert "scratch" in cli.tables()
    assert cli("db", "execute").exit_code == 1
    empty = cli("db", "execute", "--stdin", stdin="-- nothing\n")
    assert empty.exit_code == 1 and "error[empty_script]" in empty.stderr


def test_sql_prints_the_migration_for_the_configured_database(cli: Cli) -> None:
    up = cli("db", "sql", INVITES)
    assert up.exit_code == 0
    assert "CREATE TABLE workspace_invites" in up.stdout
    assert "REFERENCES workspaces (id) ON DELETE CASCADE" in up.stdout
    assert ("UUID" in up.stdout) == cli.is_pg
    down = cli("db", "sql", INVITES, "--down")
    assert "DROP TABLE workspace_invites" in down.stdout
    assert cli.tables() == set()  # connects to nothing


REBUILD_WORKSPACES = """    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("plan", sa.String(20), nullable=True))
        batch.create_check_constraint("ck_workspaces_name_set", "name <> ''")
    op.create_table("scratch_events", sa.Column("id", sa.Integer(), primary_key=True))"""


def test_a_table_rebuild_keeps_the_rows_that_point_at_it(custom_cli: Cli, versions: Path) -> None:
    """SQLite rebuilds a table for batch changes; that must not cascade into child rows."""
    cli = custom_cli
    cli("db", "deploy")
    _seed_invites(cli, 2)
    _add_revision(versions, REBUILD_WORKSPACES, "20991231000000_rebuild_workspaces")
    run = cli("db", "deploy")
    assert run.exit_code == 0, run.output
    assert cli.sql("SELECT count(*) FROM workspace_invites") == [(2,)]
    assert cli("db", "verify").exit_code == 0



def test_db_sql_renders_for_a_named_dialect_without_a_database(tmp_path: Path) -> None:
    """It used to render SQLite's SQL silently when nothing named the database."""
    def run(*args: str) -> Any:
        get_settings.cache_clear()
        env: dict[str, str | None] = {"DATABASE_URL": None, "HOME": str(tmp_path)}
        return CliRunner().invoke(app, ["db", "sql", INVITES, *args], env=env)

    for dialect, marker in (("postgresql", "UUID"), ("sqlite", "CHAR(32)")):
        rendered = run("--dialect", dialect)
        assert rendered.exit_code == 0, rendered.output
        assert f"(up) for {dialect}" in rendered.stdout and marker in rendered.stdout
        assert rendered.stderr == ""
    default = run()
    assert "for sqlite" in default.stdout
    assert "rendered for sqlite (the default database)" in default.stderr
