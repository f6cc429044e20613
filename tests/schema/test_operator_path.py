"""The on-call operator's path through `workspaces db ...` on a database that holds data: the
first `next:` line of every problem kind is the one that works (run literally, as printed),
`next:` is always a command and advice a `hint:`, what a repair lost is said, a schema change in
progress is said, and a rollback's plan comes before its question."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from typer.testing import CliRunner

from tests.conftest import ALL, INVITES, REPO, Cli, Run, system_tool
from tests.factories import production_like
from tests.schema.test_production_data import FAILING, counts, drop_invites_table
from tests.schema.test_rollback_and_failures import FIXED, _add_revision
from workspaces.cli import app
from workspaces.schema.ledger import HISTORY_TABLE, LEDGER_TABLE
from workspaces.schema.lock import LOCK_KEYS
from workspaces.settings import get_settings

# What a `next:` line may start with: a program that runs as pasted (workspaces.errors.PROGRAMS).
PROGRAMS = ("workspaces", "psql", "createdb", "pg_dump", "pg_restore")
BIN = Path(sys.executable).parent  # where `workspaces`' console script was installed


def next_lines(output: str) -> list[str]:
    """The `next:` / `or:` lines, in order."""
    return re.findall(r"^\s*(?:next|or): (.*)$", output, re.MULTILINE)


def first_step(output: str) -> str:
    steps = next_lines(output)
    assert steps, output
    return steps[0]


def literally(cli: Cli, line: str) -> Run:
    """Run a printed `workspaces ...` line as printed, through the same CLI runner, with no
    DATABASE_URL: the line itself must name the database."""
    argv = shlex.split(line, comments=True)
    assert argv[0] == "workspaces", line
    get_settings.cache_clear()
    result = CliRunner().invoke(app, argv[1:], env=cli.env, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def assert_commands_only(output: str) -> None:
    for line in next_lines(output):
        assert line.split(" ", 1)[0] in PROGRAMS, line


# Each problem kind of `db status`: how to bring it about on a database full of rows (after a
# full deploy), and the first step the runbook's table names for it.
def _pending(cli: Cli, versions: Path) -> None:
    assert cli("db", "rollback", ALL[-1], "--yes").exit_code == 0


def _objects_present(cli: Cli, versions: Path) -> None:
    cli.sql(f"DELETE FROM {LEDGER_TABLE} WHERE migration_id = '{ALL[-1]}'")


def _no_ledger(cli: Cli, versions: Path) -> None:
    cli.sql(f"DROP TABLE {LEDGER_TABLE}")
    cli.sql(f"DROP TABLE {HISTORY_TABLE}")


def _failed(cli: Cli, versions: Path) -> None:
    _add_revision(versions, FAILING)
    assert cli("db", "deploy").exit_code == 3


def _checksum_mismatch(cli: Cli, versions: Path) -> None:
    path = versions / f"{INVITES}.py"
    path.write_text(path.read_text() + "\n# a comment added after it landed\n")


def _drift_missing(cli: Cli, versions: Path) -> None:
    cli.sql("DROP INDEX ix_workspace_invites_workspace_id_status")


def _drift_differs(cli: Cli, versions: Path) -> None:
    cli.sql("ALTER TABLE workspaces ALTER COLUMN name TYPE varchar(500)")


def _partial(cli: Cli, versions: Path) -> None:
    assert cli("db", "rollback", INVITES, "--yes").exit_code == 0
    by_hand = "\n".join(line for line in cli("db", "sql", INVITES).stdout.splitlines()
                        if "CREATE INDEX" not in line and "CREATE UNIQUE INDEX" not in line)
    assert cli("db", "execute", "--stdin", stdin=by_hand).exit_code == 0


KINDS: dict[str, tuple[Callable[[Cli, Path], None], str]] = {
    "pending": (_pending, "workspaces db deploy"),
    "objects_present": (_objects_present, f"workspaces db resolve --applied {ALL[-1]}"),
    "no_ledger": (_no_ledger, "workspaces db baseline"),
    "failed": (_failed, "workspaces db resolve --rolled-back 20250201000000_broken"),
    "checksum_mismatch": (_checksum_mismatch, f"workspaces db resolve --applied {INVITES}"),
    "drift_missing": (_drift_missing, "workspaces db repair"),
    "drift_differs": (_drift_differs, "workspaces db verify"),
    "partial": (_partial, f"workspaces db complete {INVITES}"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_first_next_line_of_every_problem_kind_is_accepted_as_printed(
        custom_cli: Cli, versions: Path, kind: str) -> None:
    """The runbook's table "problem kind -> first step", row by row."""
    cli = custom_cli
    if kind == "drift_differs" and not cli.is_pg:
        pytest.skip("SQLite cannot change a column's type in place")
    assert cli("db", "deploy").exit_code == 0
    # No declined invites: rolling back past the migration that added the state cannot hold them.
    production_like(cli.url, invite_states=("pending", "expired", "accepted", "revoked"))
    make, expected = KINDS[kind]
    make(cli, versions)
    status = cli("db", "status")
    assert f"[{kind}]" in status.stdout, status.output
    assert_commands_only(status.stdout)
    step = first_step(status.stdout)
    assert step.split("  #")[0].split(" --database-url")[0] == expected
    if kind == "failed":
        _add_revision(versions, FIXED)  # the cause, fixed first, as its comment says
    done = literally(cli, step)
    assert "error[" not in done.output, done.output
    assert done.exit_code == (5 if kind == "drift_differs" else 0), done.output
    after = cli("db", "status")
    assert f"[{kind}]" not in after.stdout or kind == "drift_differs", after.stdout


def test_the_runbook_s_table_is_the_one_these_tests_run() -> None:
    """docs/production-migrations.md, "The first step of each problem": each row is a kind
    KINDS brings about and runs (`diverged`, with no command, is the test below), so the table
    and the tests cannot drift apart."""
    section = (REPO / "docs" / "production-migrations.md").read_text().split(
        "## The first step of each problem", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE))
    assert rows == {kind: re.sub(r"\b\d{14}_\w+", "ID", step)
                    for kind, (_make, step) in KINDS.items()}
    assert "| `diverged` | none: `hint: " in section


def test_a_migration_this_code_lacks_gets_advice_and_no_command(custom_cli: Cli,
                                                               versions: Path) -> None:
    """Diverged: nothing this code can run settles it; `next:` stays empty, the hint says."""
    cli = custom_cli
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    newer = _add_revision(versions, FIXED)
    assert cli("db", "deploy").exit_code == 0
    (versions / f"{newer}.py").unlink()
    status = cli("db", "status")
    assert status.exit_code == 4 and "[diverged]" in status.stdout
    assert next_lines(status.stdout) == []
    assert "hint: Deploy the code that contains it" in status.stdout
    doc = cli("db", "status", "--json")
    problem = next(p for p in json.loads(doc.stdout)["problems"]
                   if p["code"] == "diverged")
    assert problem["next"] == [] and problem["hint"]


def test_a_deleted_ledger_row_is_resolved_by_the_first_line_not_refused_deploy(
        cli: Cli) -> None:
    """The incident: the row of a migration deleted, its objects present. The first line used
    to be `db deploy`, which refused and pointed at the second."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    before = counts(cli)
    _objects_present(cli, Path())
    status = cli("db", "status")
    assert status.exit_code == 2
    assert not any(s.startswith("workspaces db deploy") for s in next_lines(status.stdout))
    assert literally(cli, first_step(status.stdout)).exit_code == 0
    assert cli("db", "status").exit_code == 0
    assert counts(cli) == before


def test_a_ledger_row_deleted_between_applied_ones_is_named_and_resolved(cli: Cli) -> None:
    """A middle migration's row deleted (later ones build on its tables): status used to stop
    with `unmodelled_migration` ("check the revision's down_revision"), naming no fix."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    before = counts(cli)
    cli.sql(f"DELETE FROM {LEDGER_TABLE} WHERE migration_id = '{INVITES}'")
    status = cli("db", "status")
    assert status.exit_code == 2, status.output
    assert f"[objects_present] Migration {INVITES} is pending" in status.stdout
    assert "drift" not in status.stdout
    assert first_step(status.stdout).startswith(f"workspaces db resolve --applied {INVITES}")
    assert literally(cli, first_step(status.stdout)).exit_code == 0
    assert cli("db", "status").exit_code == 0
    assert counts(cli) == before


def test_connection_refused_prints_advice_under_hint_never_under_next() -> None:
    run = Cli("postgresql://postgres@127.0.0.1:1/nothing", {})("db", "status")
    assert run.exit_code == 1 and "error[connection_refused]" in run.stderr
    assert next_lines(run.stderr) == []
    assert "hint: start the database, or fix the host and port" in run.stderr


def test_a_missing_database_prints_the_createdb_that_makes_it(pg_server: URL) -> None:
    name = f"wst_missing_{uuid.uuid4().hex[:8]}"
    url = pg_server.set(database=name).render_as_string(hide_password=False)
    cli = Cli(url, {})
    missing = cli("db", "status")
    assert missing.exit_code == 1 and "error[database_missing]" in missing.stderr
    step = first_step(missing.stderr)
    assert step.startswith("createdb ")
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    try:
        made = subprocess.run(shlex.split(step, comments=True), capture_output=True, text=True,
                              check=False)
        assert made.returncode == 0, made.stderr
        assert cli("db", "status").exit_code == 2  # there, empty: pending
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_lock_timeout_prints_the_queries_that_show_and_end_the_holder(pg_url: str) -> None:
    holder = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"),
                           connect_args={"application_name": "release-job-42"})
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK_KEYS)
            conn.commit()
            run = Cli(pg_url, {})("db", "deploy", "--lock-timeout", "0")
            assert run.exit_code == 1 and "error[lock_timeout]" in run.stderr
            assert_commands_only(run.stderr)
            assert "hint: Wait for it to finish" in run.stderr
            show, end = next_lines(run.stderr)
            assert "pgpassword" not in show.lower()
            shown = subprocess.run(shlex.split(show, comments=True), capture_output=True,
                                   text=True, check=False)
            assert shown.returncode == 0, shown.stderr
            assert "release-job-42" in shown.stdout
            ended = subprocess.run(shlex.split(end, comments=True), capture_output=True,
                                   text=True, check=False)
            assert ended.returncode == 0 and " t\n" in ended.stdout, ended.stdout
            # Pasted again once the holder is gone (its pid free for another session): the
            # line ends nothing, as it acts only on a holder of the deploy lock.
            again = subprocess.run(shlex.split(end, comments=True), capture_output=True,
                                   text=True, check=False)
            assert again.returncode == 0 and "(0 rows)" in again.stdout, again.stdout
    finally:
        holder.dispose()
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0  # the lock went with its session


def test_verify_fails_on_a_partly_applied_pending_migration(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url, invite_states=("pending", "expired", "accepted", "revoked"))
    _partial(cli, Path())
    verify = cli("db", "verify")
    assert verify.exit_code == 5, verify.output
    assert f"Migration {INVITES} is partly applied" in verify.stdout
    assert first_step(verify.stdout).startswith(f"workspaces db complete {INVITES}")


def test_repair_says_the_recreated_table_is_empty_and_lists_the_cleared_references(
        cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    links = cli.sql("SELECT id, invite_id FROM email_outbox WHERE invite_id IS NOT NULL")
    drop_invites_table(cli.url)
    done = cli("db", "repair", "--orphans=null")
    assert done.exit_code == 0, done.output
    assert ("created table workspace_invites, empty: the rows it held were lost when it was "
            "dropped; restore them from a backup, see docs/production-migrations.md"
            in done.stdout)
    cleared = re.findall(r"cleared email_outbox id=(\S+): invite_id was (\S+)", done.stdout)
    assert len(cleared) == len(links) == 40
    assert {(str(a).replace("-", ""), str(b).replace("-", "")) for a, b in links} == {
        (a.replace("-", ""), b.replace("-", "")) for a, b in cleared}


def test_the_runbook_restores_one_table_from_a_backup(pg_url: str, tmp_path: Path) -> None:
    """docs/production-migrations.md, "Restoring one table from a backup": repair recreates
    the table (keys kept NOT VALID), pg_restore puts its rows back, the keys are validated;
    every row and every reference is back."""
    cli = Cli(pg_url, {})
    assert cli("db", "deploy").exit_code == 0
    production_like(pg_url)
    tables = ["workspace_invites", "email_outbox"]
    before = {t: cli.sql(f"SELECT count(*) FROM {t}") for t in tables}
    links = cli.sql("SELECT id, invite_id FROM email_outbox ORDER BY id")
    libpq = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    tool = subprocess.run([system_tool("pg_dump", "postgresql-client"), "--version"],
                          capture_output=True, text=True, check=True).stdout
    [(server,)] = cli.sql("SHOW server_version_num")
    if int(str(server)) // 10000 > int(re.findall(r" (\d+)\.", tool)[0]):
        pytest.skip(f"{tool.strip()} cannot dump a PostgreSQL {server} server")
    backup = tmp_path / "invites.dump"  # the night's backup, of that one table
    subprocess.run(["pg_dump", "--format=custom", "--data-only", "--table=workspace_invites",
                    f"--file={backup}", libpq], check=True)
    drop_invites_table(pg_url)

    repaired = cli("db", "repair", "--orphans=keep")
    assert repaired.exit_code == 0, repaired.output
    assert "created table workspace_invites, empty" in repaired.stdout
    restored = subprocess.run(["pg_restore", "--data-only", "--table=workspace_invites",
                               f"--dbname={libpq}", str(backup)], capture_output=True,
                              text=True, check=False)
    assert restored.returncode == 0, restored.stderr
    verify = cli("db", "verify")
    validate = re.findall(r"then run: (ALTER TABLE .* VALIDATE CONSTRAINT .*);", verify.stdout)
    assert validate, verify.stdout
    for statement in validate:
        cli.sql(statement)
    assert "NOT VALID" not in cli("db", "verify").stdout
    assert cli("db", "status").exit_code == 0
    assert {t: cli.sql(f"SELECT count(*) FROM {t}") for t in tables} == before
    assert cli.sql("SELECT id, invite_id FROM email_outbox ORDER BY id") == links


def test_status_says_a_schema_change_is_in_progress(pg_url: str) -> None:
    cli = Cli(pg_url, {})
    holder = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"),
                           connect_args={"application_name": "release-job-42"})
    try:
        for deployed in (["--to", INVITES], []):  # the full status, then the quick one
            assert cli("db", "deploy", *deployed).exit_code == 0
            with holder.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK_KEYS)
                conn.commit()
                status = cli("db", "status")
                doc = json.loads(cli("db", "status", "--json").stdout)
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEYS)
                conn.commit()
            assert re.search(r"Schema change in progress: release-job-42 \(backend pid \d+"
                             r"(?: from \S+)?, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\) "
                             r"holds the deploy lock", status.stdout), status.stdout
            assert "a schema change is in progress." in status.stdout.splitlines()[-1]
            assert doc["in_progress"].startswith("release-job-42 (backend pid ")
            assert "in progress" not in cli("db", "status").stdout
    finally:
        holder.dispose()


def test_rollback_prints_its_plan_before_refusing_also_with_output_merged(cli: Cli) -> None:
    """No terminal, no --yes, stdout and stderr into one pipe (a CI log): the plan the error
    points at ("read the plan above") comes first."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    merged = subprocess.run(
        [str(BIN / "workspaces"), "db", "rollback", "--database-url", cli.url],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=REPO, env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(Path.home())},
        check=False)
    assert merged.returncode == 1, merged.stdout
    plan = merged.stdout.index("This will:")
    assert plan < merged.stdout.index("error[confirmation_required]"), merged.stdout


def test_rollback_counts_the_values_a_dropped_column_holds(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    [(values,)] = cli.sql("SELECT count(email_verified_at) FROM users")
    [(rows,)] = cli.sql("SELECT count(*) FROM users")
    assert 0 < int(str(values)) < int(str(rows))  # some are NULL: nothing to lose there
    # Back to before the migration that adds the column (no terminal, no --yes: the plan,
    # then a refusal).
    plan = cli("db", "rollback", "20261130232952_verified_addresses_and_account_events")
    assert plan.exit_code == 1
    assert (f"drops column users.email_verified_at (its values in {values} rows)"
            in plan.stdout), plan.stdout
