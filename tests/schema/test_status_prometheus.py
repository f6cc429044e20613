"""`workspaces db status --format prometheus`: the schema gauges of GET /metrics for a
textfile collector, with the exit code of `db status`, and gauges even when the database is
down."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cli, free_port
from tests.schema.test_rollback_and_failures import BROKEN, FIXED, _add_revision


def _gauges(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_failed_migration_and_a_database_behind_in_gauges(custom_cli: Cli,
                                                            versions: Path) -> None:
    cli = custom_cli
    broken = _add_revision(versions, BROKEN)
    assert cli("db", "deploy").exit_code == 3  # every migration applied, then this one fails
    failed = cli("db", "status", "--format", "prometheus")
    assert failed.exit_code == 3, failed.output
    assert _gauges(failed.stdout) == {
        "workspaces_database_up": 1, "workspaces_schema_ok": 0,
        "workspaces_schema_pending_migrations": 0, "workspaces_schema_failed_migrations": 1,
        "workspaces_schema_drift_objects": 0, "workspaces_schema_diverged_migrations": 0}

    _add_revision(versions, FIXED)  # the fix, as the runbook has it
    assert cli("db", "resolve", "--rolled-back", broken).exit_code == 0
    assert cli("db", "deploy").exit_code == 0
    fine = cli("db", "status", "--format", "prometheus")
    assert fine.exit_code == 0 and _gauges(fine.stdout)["workspaces_schema_ok"] == 1

    assert cli("db", "rollback", "--yes").exit_code == 0
    behind = cli("db", "status", "--format", "prometheus")
    assert behind.exit_code == 2, behind.output
    assert _gauges(behind.stdout) == {
        "workspaces_database_up": 1, "workspaces_schema_ok": 0,
        "workspaces_schema_pending_migrations": 1, "workspaces_schema_failed_migrations": 0,
        "workspaces_schema_drift_objects": 0, "workspaces_schema_diverged_migrations": 0}


def test_a_database_that_does_not_answer_still_gets_its_gauges() -> None:
    down = Cli(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing", {})
    run = down("db", "status", "--format", "prometheus")
    assert run.exit_code == 1
    assert _gauges(run.stdout) == {"workspaces_database_up": 0, "workspaces_schema_ok": 0}
    assert "error[" in run.stderr


def test_json_and_prometheus_at_once_is_a_usage_error(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'x.db'}", {})
    run = cli("db", "status", "--json", "--format", "prometheus")
    assert run.exit_code == 1 and '"bad_arguments"' in run.stdout
    assert cli("db", "status", "--format", "json").stdout.lstrip().startswith("{")
