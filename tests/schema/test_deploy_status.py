"""status and deploy on a fresh database and in the incident's state, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import ALL, INIT, INVITES, Cli
from workspaces.db import display_url, parse_url
from workspaces.schema.ledger import LEDGER_TABLE


def test_status_on_a_fresh_database_lists_everything_pending_and_writes_nothing(cli: Cli) -> None:
    run = cli("db", "status")
    assert run.exit_code == 2
    assert f"pending  {INIT}" in run.stdout
    assert INVITES in run.stdout and "creates workspace_invites" in run.stdout
    assert "workspaces db deploy" in run.stdout
    if cli.is_pg:
        assert cli.tables() == set()
    else:
        assert not Path(str(make_url(cli.url).database)).exists()


def test_deploy_applies_in_order_records_the_ledger_and_verifies(cli: Cli) -> None:
    run = cli("db", "deploy")
    assert run.exit_code == 0, run.output
    assert run.stdout.index(INIT) < run.stdout.index(INVITES)
    assert f"Schema verified: {len(ALL)} applied, up to date." in run.stdout
    assert {"users", "workspaces", "workspace_members", "workspace_invites",
            LEDGER_TABLE} <= cli.tables()
    rows = cli.sql(f"SELECT migration_id, action, outcome, checksum, applied_by, tool_version, "
                   f"finished_at, duration_ms FROM {LEDGER_TABLE} ORDER BY seq")
    assert [(r[0], r[1], r[2]) for r in rows] == [(m, "deploy", "applied") for m in ALL]
    assert all(len(str(r[3])) == 64 and "@" in str(r[4]) and r[5] and r[6] is not None
               and r[7] is not None for r in rows)

    status = cli("db", "status")
    assert status.exit_code == 0, status.output
    assert "Exit 0: up to date" in status.stdout

    again = cli("db", "deploy")
    assert again.exit_code == 0
    assert "Nothing to apply" in again.stdout
    assert len(cli.sql(f"SELECT * FROM {LEDGER_TABLE}")) == len(ALL)


def test_status_json_describes_each_migration(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    run = cli("db", "status", "--json")
    assert run.exit_code == 2
    doc = json.loads(run.stdout)
    assert doc["exit_code"] == 2
    states = {m["id"]: m["state"] for m in doc["migrations"]}
    assert states == {INIT: "applied"} | {m: "pending" for m in ALL[1:]}
    assert [p["code"] for p in doc["problems"]] == ["pending"] * (len(ALL) - 1)
    assert doc["problems"][0]["migration"] == INVITES


def test_the_incident_code_at_head_database_at_init(cli: Cli) -> None:
    """The incident: the invites migration never ran. Status names it; deploy fixes it."""
    assert cli("db", "deploy", "--to", INIT).exit_code == 0
    assert "workspace_invites" not in cli.tables()

    run = cli("db", "status")
    assert run.exit_code == 2
    assert f"[pending] Migration {INVITES} is pending." in run.stdout

    deploy = cli("db", "deploy")
    assert deploy.exit_code == 0, deploy.output
    assert f"applied {INVITES}" in deploy.stdout
    assert "workspace_invites" in cli.tables()
    assert cli("db", "verify").exit_code == 0


def test_deploy_json_reports_applied_and_final_status(cli: Cli) -> None:
    run = cli("db", "deploy", "--json")
    assert run.exit_code == 0
    doc = json.loads(run.stdout)
    assert doc["applied"] == ALL
    assert doc["status"]["exit_code"] == 0


def test_unknown_migration_in_the_ledger_is_divergence(cli: Cli) -> None:
    cli("db", "deploy")
    cli.sql(f"INSERT INTO {LEDGER_TABLE} (migration_id, action, outcome, checksum, started_at, "
            "applied_by, hostname, tool_version) VALUES ('20990101000000_from_the_future', "
            "'deploy', 'applied', 'x', CURRENT_TIMESTAMP, 'someone@elsewhere', 'elsewhere', '9')")
    run = cli("db", "status")
    assert run.exit_code == 4
    assert "20990101000000_from_the_future" in run.stdout
    assert "does not have" in run.stdout
    refused = cli("db", "deploy")
    assert refused.exit_code == 4
    assert "Refusing to deploy" in refused.stderr


def test_a_modified_revision_file_is_a_checksum_mismatch_until_accepted(custom_cli: Cli,
                                                                        versions: Path) -> None:
    cli = custom_cli
    cli("db", "deploy")
    path = versions / f"{INVITES}.py"
    path.write_text(path.read_text() + "\n# edited after it landed\n")

    run = cli("db", "status")
    assert run.exit_code == 4
    assert f"[checksum_mismatch] Migration {INVITES} was applied from a different version of " \
        f"{INVITES}.py" in run.stdout
    assert f"workspaces db resolve --applied {INVITES}" in run.stdout
    assert cli("db", "deploy").exit_code == 4

    accepted = cli("db", "resolve", "--applied", INVITES)
    assert accepted.exit_code == 0, accepted.output
    assert "checksum accepted" in accepted.stdout
    assert cli("db", "status").exit_code == 0


def test_several_problems_are_all_listed_and_the_highest_code_wins(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    cli.sql("DROP TABLE workspace_members")
    run = cli("db", "status")
    assert run.exit_code == 5
    assert "[pending]" in run.stdout and "[drift_missing]" in run.stdout
    assert "table workspace_members is missing" in run.stdout


def test_deploy_applies_pending_despite_drift_then_exits_5_naming_repair(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    cli.sql("DROP INDEX ix_workspace_members_user_id")
    run = cli("db", "deploy")
    assert run.exit_code == 5, run.output
    assert f"applied {INVITES}" in run.stdout
    assert "workspaces db repair" in run.stdout
    assert cli("db", "repair").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_commands_that_write_name_their_database_first(cli: Cli) -> None:
    """Deploy's output never named the database: a deploy against the wrong one (the default
    SQLite file) read as an all-clear."""
    shown = display_url(parse_url(cli.url))  # the one rendering of a URL for people
    for args in (("deploy",), ("baseline",), ("repair",)):
        run = cli("db", *args)
        assert run.stdout.splitlines()[0] == f"Database: {shown}", run.output
    quiet = cli("db", "deploy", "--json")
    assert json.loads(quiet.stdout)["ok"] is True  # stdout stays one JSON document
    assert f"Database: {shown}" in quiet.stderr
