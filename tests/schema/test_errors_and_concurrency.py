"""Connection and permission errors, the deploy lock, and many deployers at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from tests.conftest import ALL, INIT, INVITES, Cli, pg_database, spawn
from workspaces.schema.ledger import LEDGER_TABLE
from workspaces.schema.lock import LOCK_KEYS


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/nothing", "connection_refused"),
        ("not a url", "bad_url"),
        ("mysql://root@localhost/x", "unsupported_database"),
        ("sqlite:////nonexistent-folder/sub/x.db", "sqlite_open_failed"),
    ],
)
def test_connection_problems_exit_1_with_a_sentence(url: str, code: str) -> None:
    cli = Cli(url, {})
    for command in ("status", "deploy"):
        run = cli("db", command)
        assert run.exit_code == 1, run.output
        assert f"error[{code}]" in run.stderr
        assert "next:" in run.stderr or "hint:" in run.stderr  # a command, else advice
        assert "Traceback" not in run.output
        assert "hunter2" not in run.output


def test_json_errors_are_machine_readable() -> None:
    run = Cli("postgresql://postgres@127.0.0.1:1/nothing", {})("db", "status", "--json")
    assert run.exit_code == 1
    doc = json.loads(run.stdout)
    assert doc["ok"] is False and doc["error"]["code"] == "connection_refused"


def test_an_unknown_role_is_an_authentication_error(pg_url: str) -> None:
    url = make_url(pg_url).set(username="nobody_here", password=None)
    run = Cli(url.render_as_string(hide_password=False), {})("db", "status")
    assert run.exit_code == 1
    assert "error[authentication_failed]" in run.stderr
    assert "nobody_here" in run.stderr


def test_a_role_without_create_gets_a_permission_error_recorded_as_failed(pg_url: str) -> None:
    owner = Cli(pg_url, {})
    assert owner("db", "deploy", "--to", INIT).exit_code == 0
    role = "wst_limited"
    admin = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))  # left over from an aborted run
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT, INSERT ON {LEDGER_TABLE} TO {role}"))
        conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    try:
        limited = Cli(make_url(pg_url).set(username=role).render_as_string(False), {})
        run = limited("db", "deploy")
        assert run.exit_code == 3, run.output
        assert f"error[permission_denied]: migration {INVITES} failed: the database role " \
            "lacks a privilege it needs" in run.stderr
        assert "GRANT CREATE ON SCHEMA public" in run.stderr
        assert "workspace_invites" not in owner.tables()
        status = owner("db", "status")
        assert status.exit_code == 3
        assert "permission denied" in status.stdout
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_deploy_waits_for_the_lock_names_the_holder_and_times_out(pg_url: str,
                                                                  pg_server: URL) -> None:
    holder = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"),
                           connect_args={"application_name": "release-job-42"})
    # The same lock in a neighbouring database of the server (another tenant, another test
    # worker) is not ours: it neither blocks this deploy nor gets named as its holder.
    with pg_database(pg_server) as other_url:
        neighbour = create_engine(make_url(other_url).set(drivername="postgresql+psycopg"),
                                  connect_args={"application_name": "neighbour-db-job"})
        with neighbour.connect() as other, holder.connect() as conn:
            other.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK_KEYS)
            other.commit()
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK_KEYS)
            conn.commit()
            run = Cli(pg_url, {})("db", "deploy", "--lock-timeout", "1")
            assert run.exit_code == 1
            assert "error[lock_timeout]" in run.stderr
            assert "release-job-42" in run.stderr
            assert "neighbour-db-job" not in run.output
            assert "Waiting for the deploy lock held by release-job-42" in run.stdout
            assert LEDGER_TABLE not in Cli(pg_url, {}).tables()  # waited outside a transaction
        neighbour.dispose()
    holder.dispose()
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0


def test_eight_deploys_at_once_apply_each_migration_exactly_once(db_url: str,
                                                                 tmp_path: Path) -> None:
    processes = [spawn(["db", "deploy", "--database-url", db_url, "--lock-timeout", "60"],
                       {"DATABASE_URL": ""}) for _ in range(8)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0] * 8, results
    cli = Cli(db_url, {})
    rows = cli.sql(f"SELECT migration_id, outcome FROM {LEDGER_TABLE} ORDER BY seq")
    assert rows == [(m, "applied") for m in ALL]
    assert sum("Nothing to apply" in out for _, out, _ in results) >= 1
    assert cli("db", "status").exit_code == 0
