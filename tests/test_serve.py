"""`workspaces serve` as a real process: the schema check at start, and a whole invite flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import (
    INIT,
    INVITES,
    Cli,
    Sink,
    free_port,
    link_in,
    server_log,
    serving,
    spawn,
)

ENV = {"SECRET_KEY": "serve-test-secret-key-of-enough-length", "DATABASE_URL": ""}
# Installed with the CLI (Typer) or the schema toolkit, used by no request a worker serves; the
# sessions list parses User-Agent headers (ua_parser, which loads yaml) when first shown.
NOT_IN_A_WORKER = ("click", "rich", "pygments", "typer", "sqlparse", "ua_parser", "yaml")
# The schema toolkit's: a worker loads them when the quick status cannot answer (drift, a
# pending migration, a database that does not answer), never to serve.
ONLY_WHEN_THE_SCHEMA_IS_NOT_VERIFIED = ("alembic", "mako", "psycopg", "psycopg_binary")


def test_serve_refuses_a_stale_postgresql_schema_unless_told_to_migrate(pg_url: str) -> None:
    Cli(pg_url, {})("db", "deploy", "--to", INIT)
    process = spawn(["serve", "--port", str(free_port()), "--database-url", pg_url], ENV)
    code = process.wait(timeout=30)
    _, err = process.communicate()
    assert code == 2
    assert f"[pending] Migration {INVITES} is pending." in err
    assert "error[schema_out_of_date]" in err and "workspaces db deploy" in err

    with serving(["--database-url", pg_url, "--migrate"], {}) as (base, _):
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"


def test_serve_migrate_checks_the_settings_before_it_touches_the_schema(pg_url: str) -> None:
    """It used to apply the migrations and only then stop for a missing SECRET_KEY."""
    Cli(pg_url, {})("db", "deploy", "--to", INIT)
    process = spawn(["serve", "--port", str(free_port()), "--database-url", pg_url, "--migrate"],
                    {**ENV, "SECRET_KEY": ""})
    code = process.wait(timeout=30)
    _, err = process.communicate()
    assert code == 1, err
    assert "error[secret_key_missing]" in err
    assert Cli(pg_url, {})("db", "status").exit_code == 2  # still pending: nothing applied


def test_serve_applies_pending_migrations_itself_on_sqlite(sqlite_url: str) -> None:
    Cli(sqlite_url, {})("db", "deploy", "--to", INIT)
    with serving(["--database-url", sqlite_url], {"SECRET_KEY": ""}) as (base, _):
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    assert Cli(sqlite_url, {})("db", "status").exit_code == 0


def test_serve_refuses_a_missing_table_with_the_fix(db_url: str) -> None:
    cli = Cli(db_url, {})
    cli("db", "deploy")
    cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))
    process = spawn(["serve", "--port", str(free_port()), "--database-url", db_url], ENV)
    assert process.wait(timeout=30) == 5
    err = process.communicate()[1]
    assert "error[schema_out_of_date]" in err and "workspaces db repair" in err


def test_serve_starts_degraded_on_drift_it_runs_on_and_says_so(db_url: str) -> None:
    """A dropped index: every request works, so a restart must not take the replica out
    (the rule /readyz follows); the log names the problem and the fix."""
    cli = Cli(db_url, {})
    cli("db", "deploy")
    cli.sql("DROP INDEX ix_workspace_invites_workspace_id_email")
    with serving(["--database-url", db_url], {}) as (base, process):
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["next_step"].startswith("workspaces db repair")
        logged = server_log(process)
    (line,) = [line for line in logged.splitlines() if "starting degraded" in line]
    assert "WARNING" in line and "drift_missing" in line
    assert "fix: workspaces db repair" in line


def test_an_invite_flow_against_a_running_server(db_url: str, smtp: Sink) -> None:
    Cli(db_url, {})("db", "deploy")
    env = {"SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "BASE_URL": "http://example.test",
           "EMAIL_POLL_SECONDS": "0.2"}
    with serving(["--database-url", db_url, "--workers", "2"], env) as (base, process):
        client = httpx.Client(base_url=base, timeout=10)
        signup = client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": "correct horse", "name": "Ann"})
        owner = {"Authorization": f"Bearer {signup.json()['token']}"}
        slug = client.post("/api/workspaces", json={"name": "Acme"}, headers=owner).json()["slug"]
        created = client.post(f"/api/workspaces/{slug}/invites",
                              json={"email": "bob@example.com"}, headers=owner)
        assert created.status_code == 201, created.text
        token = link_in(smtp.wait_for(1)[0])
        joined = client.post(f"/api/invites/{token}/accept",
                             json={"name": "Bob", "password": "bob's password"})
        assert joined.status_code == 200, joined.text
        members = client.get(f"/api/workspaces/{slug}/members", headers=owner).json()
        assert [m["email"] for m in members] == ["ann@example.com", "bob@example.com"]
        assert client.get("/readyz").json()["status"] == "ready"
        assert client.get("/openapi.json").json()["info"]["title"] == "Workspaces"
        assert client.get(f"/invites/{token}").status_code == 200
        assert client.get(f"/reset/{token}").status_code == 410  # a made-up reset link
        process.terminate()
        process.wait(timeout=20)
        output = server_log(process)
    assert "/invites/[redacted]" in output  # the access log saw the link, without its token
    assert "/reset/[redacted]" in output
    assert token not in output


def test_the_smoke_command_passes_against_a_running_server_and_cleans_up(db_url: str) -> None:
    cli = Cli(db_url, {})
    cli("db", "deploy")
    with serving(["--database-url", db_url], {}) as (base, _):
        smoke = spawn(["smoke", "--base-url", base])
        out, err = smoke.communicate(timeout=60)
    assert smoke.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "10 passed, 0 failed"
    assert all(line.startswith("PASS  ") for line in lines[:-1])
    assert "PASS  accept the invite through the API (joined as member)" in lines
    assert cli.sql("SELECT count(*) FROM users") == [(0,)]
    assert cli.sql("SELECT count(*) FROM workspaces") == [(0,)]


def test_the_smoke_command_fails_loudly_on_a_broken_deployment(db_url: str) -> None:
    cli = Cli(db_url, {})
    cli("db", "deploy")
    with serving(["--database-url", db_url], {}) as (base, _):
        cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))
        smoke = spawn(["smoke", "--base-url", base])
        out, _ = smoke.communicate(timeout=60)
        as_json = spawn(["smoke", "--base-url", base, "--json"])
        doc_text, _ = as_json.communicate(timeout=60)
    assert smoke.returncode == 1
    assert "FAIL  service ready (/readyz)" in out and "workspace_invites" in out
    assert as_json.returncode == 1
    doc = json.loads(doc_text)  # one document, nothing else on stdout
    assert doc["ok"] is False and doc["steps"][0]["name"] == "service ready (/readyz)"
    assert doc["steps"][0]["ok"] is False and "workspace_invites" in doc["steps"][0]["detail"]
    unreachable = spawn(["smoke", "--base-url", f"http://127.0.0.1:{free_port()}"])
    out, _ = unreachable.communicate(timeout=60)
    assert unreachable.returncode == 1 and "FAIL  service ready" in out


def _invite_link(base: str) -> str:
    """Sign up, create a workspace and invite someone on the server at `base`: the link."""
    owner = httpx.post(f"{base}/api/auth/signup", json={
        "email": "ann@example.com", "password": "correct horse battery", "name": "Ann"})
    headers = {"Authorization": f"Bearer {owner.json()['token']}"}
    slug = httpx.post(f"{base}/api/workspaces", json={"name": "Acme"},
                      headers=headers).json()["slug"]
    issued = httpx.post(f"{base}/api/workspaces/{slug}/invites",
                        json={"email": "bob@example.com"}, headers=headers)
    assert issued.status_code == 201, issued.text
    return str(issued.json()["accept_url"])


def test_base_url_follows_the_port_when_unset(sqlite_url: str) -> None:
    with serving(["--database-url", sqlite_url], {"BASE_URL": None}) as (base, _):
        assert _invite_link(base).startswith(f"{base}/invites/")


def test_a_base_url_on_another_port_is_warned_about_and_fails_the_smoke_test(
        sqlite_url: str) -> None:
    with serving(["--database-url", sqlite_url],
                 {"BASE_URL": "http://localhost:8000"}) as (base, process):
        smoke = spawn(["smoke", "--base-url", base])
        out, _ = smoke.communicate(timeout=60)
        log = server_log(process)
    assert "BASE_URL is http://localhost:8000, but this server listens on port" in log
    assert smoke.returncode == 1
    assert "FAIL  invite the second user: the invite link points at http://localhost:8000" \
        in out



def _imported(code: str, env: dict[str, str]) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (not the names
    workspaces/__init__.py blocks: None in sys.modules)."""
    shown = (f"{code}; import sys; "
             "print(' '.join(sorted(k for k, v in sys.modules.items() if v is not None)))")
    run = subprocess.run([sys.executable, "-c", shown], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return set(run.stdout.split())


def test_a_worker_imports_no_command_line_tools(sqlite_url: str) -> None:
    """What each worker imports and keeps: the application, not the CLI's libraries that some
    packages (httpx, Mako) import whenever they are installed."""
    imported = {name.split(".")[0] for name in _imported(
        "import workspaces.app; workspaces.app.create_app()", {**ENV, "DATABASE_URL": sqlite_url})}
    assert {"fastapi", "sqlalchemy", "httpx"} <= imported  # it did load the app
    assert imported.isdisjoint(NOT_IN_A_WORKER), imported & set(NOT_IN_A_WORKER)
    assert imported.isdisjoint(ONLY_WHEN_THE_SCHEMA_IS_NOT_VERIFIED)


def test_a_worker_answers_its_probes_on_a_verified_schema_without_the_toolkit(
        db_url: str) -> None:
    """/readyz and /metrics read the status `db deploy` verified through the application's
    own driver: no worker holds Alembic or psycopg while nothing drifted (schema/serving.py)."""
    assert Cli(db_url, {})("db", "deploy").exit_code == 0
    code = ("import workspaces.app; from fastapi.testclient import TestClient; "
            "client = TestClient(workspaces.app.create_app(), client=('127.0.0.1', 50000)); "
            "client.__enter__(); ready = client.get('/readyz'); "
            "scraped = client.get('/metrics').text; client.__exit__(None, None, None); "
            "assert ready.json()['status'] == 'ready', ready.text; "
            "assert 'workspaces_schema_ok 1.0' in scraped, scraped; "
            "assert 'workspaces_outbox_emails{status=\"sent\"} 0.0' in scraped, scraped")
    imported = {name.split(".")[0] for name in _imported(code, {**ENV, "DATABASE_URL": db_url})}
    assert "asyncpg" in imported or db_url.startswith("sqlite")
    assert imported.isdisjoint(ONLY_WHEN_THE_SCHEMA_IS_NOT_VERIFIED), (
        imported & set(ONLY_WHEN_THE_SCHEMA_IS_NOT_VERIFIED))


def test_the_events_models_of_the_openapi_document_load_when_it_is_first_asked_for(
        sqlite_url: str) -> None:
    """The `webhooks` section's models (about 8 MiB a worker) are made for /openapi.json, not
    for serving; the document still describes every published event."""
    code = ("import sys, workspaces.app; app = workspaces.app.create_app(); "
            "print('before', 'workspaces.events.documented' in sys.modules); "
            "print('types', len(app.openapi()['webhooks'])); "
            "print('after', 'workspaces.events.documented' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **ENV, "DATABASE_URL": sqlite_url}, check=True)
    from workspaces.events.catalogue import PUBLISHED

    assert run.stdout.split("\n")[:3] == [
        "before False", f"types {len(PUBLISHED) + 1}", "after True"]  # + the test message


def test_the_supervisor_imports_uvicorn_and_the_log_alone() -> None:
    """docs/architecture.md: what the supervisor of `serve --workers N` imports it holds as
    long as the server runs (tests/test_serve_metrics.py looks at the running process)."""
    imported = _imported("import uvicorn, workspaces.supervisor", {})
    ours = {name for name in imported if name.startswith("workspaces")}
    assert ours == {"workspaces", "workspaces.supervisor", "workspaces.logs",
                    "workspaces.tokens", "workspaces.metrics"}
    assert imported.isdisjoint({"sqlalchemy", "pydantic", "fastapi", "starlette", "alembic",
                                "prometheus_client", "cryptography", "httpx"})
