"""Drift (the ledger says applied, the objects are gone) found, then fixed two ways."""

from __future__ import annotations

import json

from tests.conftest import ALL, INIT, INVITES, Cli
from workspaces.schema.ledger import LEDGER_TABLE


def _drop_invites(cli: Cli) -> None:
    cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))


def test_status_and_verify_name_the_missing_table_and_its_migration(cli: Cli) -> None:
    cli("db", "deploy")
    _drop_invites(cli)

    status = cli("db", "status")
    assert status.exit_code == 5
    assert (f"[drift_missing] Migration {INVITES} is recorded as applied but table "
            "workspace_invites is missing.") in status.stdout
    assert "workspaces db repair" in status.stdout

    verify = cli("db", "verify", "--json")
    assert verify.exit_code == 5
    doc = json.loads(verify.stdout)
    missing = [d for d in doc["differences"] if d["kind"] == "missing"]
    assert missing[0] == {"kind": "missing", "object": "table workspace_invites",
                          "object_kind": "table", "table": "workspace_invites", "name": "",
                          "migration": INVITES, "detail": ""}
    assert {"ix_workspace_invites_workspace_id_email", "uq_workspace_invites_pending_email"} \
        <= {d["name"] for d in missing[1:]}
    assert {p["migration"] for p in doc["problems"]} <= {INVITES, ALL[2]}


def test_repair_dry_run_prints_sql_and_changes_nothing(cli: Cli) -> None:
    cli("db", "deploy")
    _drop_invites(cli)
    run = cli("db", "repair", "--dry-run")
    assert run.exit_code == 0
    assert "CREATE TABLE workspace_invites" in run.stdout
    assert "CREATE INDEX ix_workspace_invites_workspace_id_status" in run.stdout
    assert "workspace_invites" not in cli.tables()


def test_repair_recreates_the_table_with_indexes_and_keys(cli: Cli) -> None:
    cli("db", "deploy")
    _drop_invites(cli)
    run = cli("db", "repair")
    assert run.exit_code == 0, run.output
    assert "created table workspace_invites" in run.stdout
    assert cli("db", "verify").exit_code == 0
    assert cli("db", "status").exit_code == 0
    rows = cli.sql(f"SELECT migration_id, note FROM {LEDGER_TABLE} WHERE action = 'repair'")
    repairs = {row[0]: row[1] for row in rows}
    assert "table workspace_invites" in str(repairs[INVITES])
    if cli.is_pg:  # CASCADE also took the outbox's key to the invites, made by a later migration
        assert "fk_email_outbox_invite_id_workspace_invites" in str(repairs[ALL[2]])


def test_repair_adds_back_a_dropped_column_and_verify_notes_extra_ones(cli: Cli) -> None:
    cli("db", "deploy")
    cli.sql("ALTER TABLE workspace_invites DROP COLUMN revoked_at")
    cli.sql("ALTER TABLE workspace_invites ADD COLUMN handmade integer")
    verify = cli("db", "verify")
    assert verify.exit_code == 5
    assert f"column workspace_invites.revoked_at is missing (migration {INVITES})" \
        in verify.stdout
    assert "column workspace_invites.handmade" in verify.stdout and "not an error" \
        in verify.stdout
    run = cli("db", "repair")
    assert run.exit_code == 0, run.output
    assert "created column workspace_invites.revoked_at" in run.stdout
    assert cli("db", "status").exit_code == 0


def test_repair_recreates_a_dropped_index_and_unique_constraint(cli: Cli) -> None:
    cli("db", "deploy")
    cli.sql("DROP INDEX ix_workspace_invites_workspace_id_email")
    status = cli("db", "status")
    assert status.exit_code == 5
    assert "index ix_workspace_invites_workspace_id_email on workspace_invites is missing" \
        in status.stdout
    if cli.is_pg:  # SQLite cannot drop a constraint from an existing table
        cli.sql("ALTER TABLE workspace_invites DROP CONSTRAINT uq_workspace_invites_token")
        assert "unique constraint uq_workspace_invites_token on workspace_invites is missing" \
            in cli("db", "status").stdout
    assert cli("db", "repair").exit_code == 0
    assert cli("db", "verify").exit_code == 0


def test_repair_restores_foreign_keys_that_drop_cascade_removed(pg_url: str) -> None:
    cli = Cli(pg_url, {})
    cli("db", "deploy")
    cli.sql("DROP TABLE workspaces CASCADE")
    status = cli("db", "status")
    assert status.exit_code == 5
    assert "foreign key fk_workspace_members_workspace_id_workspaces on workspace_members " \
        "is missing" in status.stdout
    assert "foreign key fk_workspace_invites_workspace_id_workspaces on workspace_invites " \
        "is missing" in status.stdout
    run = cli("db", "repair")
    assert run.exit_code == 0, run.output
    assert "created foreign key fk_workspace_members_workspace_id_workspaces" in run.stdout
    assert cli("db", "verify").exit_code == 0


def test_a_changed_column_is_reported_with_manual_steps_never_rewritten(pg_url: str) -> None:
    cli = Cli(pg_url, {})  # SQLite cannot change a column's nullability in place
    cli("db", "deploy")
    cli.sql("ALTER TABLE workspace_invites ALTER COLUMN email DROP NOT NULL")
    verify = cli("db", "verify")
    assert verify.exit_code == 5
    assert "column workspace_invites.email differs: nullable is NULL, expected NOT NULL" \
        in verify.stdout
    repair = cli("db", "repair")
    assert repair.exit_code == 5
    assert "manual:" in repair.stdout


def test_the_runbook_path_resolve_rolled_back_then_deploy(cli: Cli) -> None:
    """The original runbook, in its own setting: invites is the newest applied migration."""
    cli("db", "deploy", "--to", INVITES)
    refused = cli("db", "resolve", "--rolled-back", INVITES)
    assert refused.exit_code == 1
    assert "still has table workspace_invites" in refused.stderr

    _drop_invites(cli)
    run = cli("db", "resolve", "--rolled-back", INVITES)
    assert run.exit_code == 0, run.output
    assert "objects verified absent" in run.stdout
    assert cli("db", "status").exit_code == 2
    assert cli("db", "deploy", "--to", INVITES).exit_code == 0
    assert cli("db", "status").exit_code == 2  # only the later migrations are pending
    history = cli.sql(f"SELECT action, outcome FROM {LEDGER_TABLE} WHERE migration_id = "
                      f"'{INVITES}' ORDER BY seq")
    assert history == [("deploy", "applied"), ("resolve", "rolled_back"), ("deploy", "applied")]


def test_resolve_rolled_back_refuses_when_later_migrations_changed_the_table(cli: Cli) -> None:
    cli("db", "deploy")
    _drop_invites(cli)
    run = cli("db", "resolve", "--rolled-back", INVITES)
    assert run.exit_code == 1
    assert "error[later_migrations_depend]" in run.stderr and ALL[2] in run.stderr
    assert "workspaces db repair" in run.stderr
    assert cli("db", "repair").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_the_manual_path_sql_then_resolve_applied(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    refused = cli("db", "resolve", "--applied", INVITES)
    assert refused.exit_code == 1
    assert "lacks table workspace_invites" in refused.stderr

    script = cli("db", "sql", INVITES)
    assert script.exit_code == 0
    assert f"workspaces db resolve --applied {INVITES}" in script.stdout
    ran = cli("db", "execute", "--stdin", stdin=script.stdout)
    assert ran.exit_code == 0, ran.output

    status = cli("db", "status")
    assert status.exit_code == 2
    assert "[objects_present]" in status.stdout
    deploy = cli("db", "deploy")
    assert deploy.exit_code == 2
    assert "resolve --applied" in deploy.stderr

    resolved = cli("db", "resolve", "--applied", INVITES)
    assert resolved.exit_code == 0, resolved.output
    status = cli("db", "status")
    assert status.exit_code == 2 and INVITES not in status.stdout.split("Problems:")[1]


def test_resolve_applied_with_force_records_anyway_and_says_so(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    run = cli("db", "resolve", "--applied", INVITES, "--force")
    assert run.exit_code == 0
    assert "forced; missing: table workspace_invites" in run.stdout
    assert cli("db", "status").exit_code == 5


def test_resolve_needs_exactly_one_target(cli: Cli) -> None:
    run = cli("db", "resolve")
    assert run.exit_code == 1
    assert "error[bad_arguments]" in run.stderr
    unknown = cli("db", "resolve", "--applied", "nope")
    assert unknown.exit_code == 1
    assert "error[unknown_migration]" in unknown.stderr


def test_baseline_adopts_a_database_that_predates_the_ledger(cli: Cli) -> None:
    for migration in ALL:
        assert cli("db", "execute", "--stdin", stdin=cli("db", "sql", migration).stdout) \
            .exit_code == 0
    status = cli("db", "status")
    assert status.exit_code == 2
    assert "[no_ledger]" in status.stdout and "workspaces db baseline" in status.stdout
    assert cli("db", "deploy").exit_code == 2

    run = cli("db", "baseline")
    assert run.exit_code == 0, run.output
    assert all(f"recorded {m} as applied" in run.stdout for m in ALL)
    assert cli("db", "status").exit_code == 0
    assert cli("db", "baseline").exit_code == 1


def test_baseline_stops_at_the_first_migration_whose_objects_are_missing(cli: Cli) -> None:
    cli("db", "execute", "--stdin", stdin=cli("db", "sql", INIT).stdout)
    run = cli("db", "baseline")
    assert run.exit_code == 0
    assert f"recorded {INIT} as applied" in run.stdout
    assert f"stopped at {INVITES}: missing table workspace_invites" in run.stdout
    assert cli("db", "deploy").exit_code == 0
    assert cli("db", "status").exit_code == 0
