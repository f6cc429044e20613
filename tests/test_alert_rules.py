"""deploy/prometheus/alerts.yml: valid, its unit tests passing (promtool), and naming only
metrics the application exports, so that the rules cannot drift from the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, system_tool
from workspaces.app import create_app
from workspaces.settings import Settings

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yml"


@pytest.mark.parametrize("command", [["check", "rules", str(RULES)],
                                     ["test", "rules", str(RULE_TESTS)]])
def test_promtool_accepts_the_rules_and_their_tests_pass(command: list[str]) -> None:
    promtool = system_tool("promtool", "prometheus")
    run = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    rules = _rules()
    assert {str(r["alert"]) for r in rules} >= {
        "WorkspacesSchemaBehind", "WorkspacesMigrationFailed", "WorkspacesSchemaDrift",
        "WorkspacesEmailBacklog", "WorkspacesEmailDeliveryFailing", "WorkspacesHighErrorRate",
        "WorkspacesNotReady", "WorkspacesWebhookBacklog", "WorkspacesWebhookDeliveryFailing"}
    tested = RULE_TESTS.read_text()
    for rule in rules:
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(notes, dict)
        assert labels["severity"] in ("critical", "warning"), rule["alert"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert f"{rule['alert']} fires" in tested and f"{rule['alert']} stays quiet" in tested


def test_the_rules_name_only_metrics_the_app_exports(sqlite_template: str,
                                                     tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    shutil.copy(sqlite_template, database)
    settings = Settings(database_url=f"sqlite:///{database}", email_backend="console",
                        secret_key="test-secret-key-of-enough-length",
                        _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        client.get("/healthz")
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    exported: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        exported |= {sample.name for sample in family.samples}
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        exported |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    used = {name for rule in _rules()
            for name in re.findall(r"\bworkspaces_[a-z0-9_]+", str(rule["expr"]))}
    assert used, "no metric found in the rules"
    assert used <= exported, used - exported
