"""The quick status (schema/verified.py): the same report as the full one on a schema that
`db deploy` verified and nobody changed since, and the full way whenever anything changed."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli
from workspaces.cli.common import open_toolkit
from workspaces.db import display_url, parse_url
from workspaces.errors import Exit
from workspaces.schema import ledger
from workspaces.schema.revisions import MigrationSet, read_quickly
from workspaces.schema.serving import ServingStatus
from workspaces.schema.verified import LEDGER_TABLE, _read_url, quick_status

ROOT = Path(__file__).resolve().parents[2]


def _full(cli: Cli) -> dict[str, object]:
    return open_toolkit(cli.url, False).status(quick=False).as_dict()


def test_after_deploy_the_quick_report_is_the_full_report(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    quick = quick_status(cli.url)
    assert quick is not None
    assert quick.as_dict() == _full(cli)
    run = cli("db", "status", "--json")
    assert run.exit_code == 0 and json.loads(run.stdout)["exit_code"] == 0


def test_a_server_reads_the_same_reports_through_its_own_driver(cli: Cli) -> None:
    """What /readyz, /metrics and the schema guard read (schema/serving.py): the quick report
    through asyncpg on PostgreSQL, and the full report once anything changed."""
    assert cli("db", "deploy").exit_code == 0
    status = ServingStatus(parse_url(cli.url), None, pooling="session")
    quick = asyncio.run(status.quick())
    assert quick is not None and quick.as_dict() == _full(cli)
    assert asyncio.run(status.report()).as_dict() == _full(cli)
    cli.sql("DROP INDEX ix_workspace_invites_workspace_id_status")
    assert asyncio.run(status.quick()) is None
    drifted = asyncio.run(status.report())
    assert drifted.as_dict() == _full(cli) and drifted.exit_code == Exit.DRIFT
    assert status.migrations == read_quickly()


def test_comments_are_no_drift_and_still_take_the_full_way(pg_url: str) -> None:
    """A comment an operator adds changes nothing the application relies on: the full check
    says up to date (it used to crash on a table comment); the quick one does not vouch for a
    catalogue it did not see, and takes the full way."""
    cli = Cli(pg_url, {})
    assert cli("db", "deploy").exit_code == 0
    assert quick_status(cli.url) is not None
    cli.sql("COMMENT ON COLUMN users.email IS 'the sign-in address'")
    assert quick_status(cli.url) is None
    assert cli("db", "status").exit_code == 0
    cli.sql("COMMENT ON TABLE users IS 'accounts'")
    assert quick_status(cli.url) is None
    run = cli("db", "status", "--json")
    assert run.exit_code == 0 and json.loads(run.stdout)["differences"] == []


def test_a_record_of_another_format_or_comparison_counts_for_nothing(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release whose comparison sees more must not trust what an older one verified."""
    from workspaces.schema import verified

    assert cli("db", "deploy").exit_code == 0
    assert quick_status(cli.url) is not None
    monkeypatch.setattr(verified, "FORMAT", verified.FORMAT + 1)
    assert quick_status(cli.url) is None
    assert cli("db", "deploy").exit_code == 0  # deploy verifies and records again
    assert quick_status(cli.url) is not None


@pytest.mark.parametrize("change", ["drop table", "add index", "drop index", "alter column"])
def test_a_changed_catalogue_takes_the_full_way(cli: Cli, change: str) -> None:
    assert cli("db", "deploy").exit_code == 0
    assert quick_status(cli.url) is not None
    cli.sql({
        "drop table": "DROP TABLE audit_events",
        "add index": "CREATE INDEX by_hand ON workspace_invites (created_at)",
        "drop index": "DROP INDEX ix_workspace_invites_workspace_id_status",
        "alter column": ("ALTER TABLE workspaces ALTER COLUMN name TYPE text" if cli.is_pg
                         else "ALTER TABLE workspaces ADD COLUMN extra INTEGER"),
    }[change])
    assert quick_status(cli.url) is None
    run = cli("db", "status")
    full = _full(cli)
    if change in ("drop table", "drop index") or (change == "alter column" and cli.is_pg):
        assert run.exit_code == 5, run.stdout  # drift, named by the full comparison
        assert full["differences"]
    else:  # objects nobody expects: reported as differences, not as problems
        assert run.exit_code == 0 and full["differences"]


def test_a_changed_history_takes_the_full_way(custom_cli: Cli, versions: Path) -> None:
    cli = custom_cli
    assert cli("db", "deploy").exit_code == 0
    assert quick_status(cli.url, versions) is not None
    serving = ServingStatus(parse_url(cli.url), versions, pooling="session")
    assert asyncio.run(serving.quick()) is not None
    last = MigrationSet(versions).migrations[-1]
    last.path.write_text(last.path.read_text() + "\n# edited after it was applied\n")
    assert quick_status(cli.url, versions) is None
    assert asyncio.run(serving.quick()) is None  # a server reads the changed file too
    assert cli("db", "status").exit_code == 4  # checksum_mismatch
    last.path.write_text(last.path.read_text().replace("\n# edited after it was applied\n", ""))
    assert quick_status(cli.url, versions) is not None
    assert cli("db", "rollback", last.id, "--yes").exit_code == 0
    assert quick_status(cli.url, versions) is None  # pending again
    assert cli("db", "status").exit_code == 2
    assert cli("db", "deploy").exit_code == 0
    assert quick_status(cli.url, versions) is not None


def test_a_database_never_verified_takes_the_full_way(cli: Cli, tmp_path: Path) -> None:
    assert quick_status(cli.url) is None  # nothing there yet
    assert quick_status(f"sqlite:///{tmp_path / 'absent.db'}") is None
    assert quick_status("postgresql://u@h:port/x") is None  # the full way says bad_url


def test_revisions_read_without_alembic_are_the_same(versions: Path) -> None:
    full, quick = MigrationSet(versions), read_quickly(versions)
    assert quick is not None
    assert [(m.id, m.path, m.title, m.checksum) for m in full] == [
        (m.id, m.path, m.title, m.checksum) for m in quick]
    first = quick[0].path.read_text()
    (versions / "zz_second_head.py").write_text(first.replace(
        quick[0].id, "zz_second_head").replace("down_revision = None",
                                               f'down_revision = "{quick[0].id}"'))
    assert read_quickly(versions) is None  # two heads: the full reading refuses it, clearly
    (versions / "zz_second_head.py").rename(versions / "_underscored.py")
    assert read_quickly(versions) is None  # Alembic reads it: the quick reading does not guess


@pytest.mark.parametrize("raw", [
    "postgresql://postgres@127.0.0.1:5432/db", "postgres://u:secret@db.example:6543/app",
    "postgresql+asyncpg://u@localhost/app", "sqlite:///relative.db", "sqlite:////abs/x.db",
    "sqlite+aiosqlite:///w.db", "postgresql://postgres:@/db?host=/tmp/pg-socket",
    "postgresql://u:p%40ss@h:5432/db?sslmode=require"])
def test_the_database_is_shown_as_the_full_status_shows_it(raw: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("relative.db", "w.db"):
        (tmp_path / name).touch()
    if raw == "sqlite:////abs/x.db":
        raw = f"sqlite:///{tmp_path / 'x.db'}"
        (tmp_path / "x.db").touch()
    read = _read_url(raw)
    assert read is not None
    assert read[1] == display_url(parse_url(raw))


def test_the_ledger_table_name_is_the_ledgers() -> None:
    assert LEDGER_TABLE == ledger.LEDGER_TABLE


def test_db_status_of_a_verified_schema_imports_neither_sqlalchemy_nor_alembic(
        sqlite_url: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": sqlite_url, "HOME": str(tmp_path)}
    for args in (["db", "deploy"], ["db", "status"]):
        process = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "workspaces", *args], cwd=tmp_path,
            env=env, capture_output=True, text=True, timeout=120, check=False)
        assert process.returncode == 0, process.stdout + process.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in process.stderr.splitlines() if line.startswith("import time:")}
    assert "workspaces" in imported
    assert not imported & {"sqlalchemy", "alembic", "fastapi"}, sorted(imported)


@pytest.mark.parametrize("raw", [
    "postgresql://postgres@127.0.0.1:5432/db", "postgres://u:s3cret@db.example:6543/app",
    "postgresql+psycopg://u@h/x_y", "postgresql://h.example/db", "sqlite:///w.db",
    "sqlite:////var/lib/ws/w.db", "sqlite+aiosqlite:///w.db",
    "postgresql://u:p%40ss@h/db", "postgresql://h/db?sslmode=require"])
def test_next_steps_name_the_database_as_sqlalchemy_would(
        raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Target.of reads the usual spellings without SQLAlchemy (a quick `db status` does not
    load it); what it prints is what SQLAlchemy's rendering would have printed."""
    from sqlalchemy.engine import make_url

    from workspaces.cli.common import Target

    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = make_url(raw)
    bare = url._replace(password=None).render_as_string(hide_password=False)
    target = Target.of(raw)
    assert target.suffix == f" --database-url {shlex.quote(bare)}"
    assert (target.note is not None) == bool(url.password)
