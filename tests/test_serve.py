"""`workspaces serve` as a real process: it refuses a stale schema and reports readiness."""

from __future__ import annotations

import socket
import time

import httpx

from tests.conftest import INIT, INVITES, Cli, spawn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_to_start_on_a_stale_schema_and_names_the_migration(cli: Cli) -> None:
    cli("db", "deploy", "--to", INIT)
    process = spawn(["serve", "--port", str(_free_port()), "--database-url", cli.url])
    code = process.wait(timeout=30)
    _, err = process.communicate()
    assert code == 2
    assert f"[pending] Migration {INVITES} is pending." in err
    assert "error[schema_out_of_date]" in err and "workspaces db deploy" in err


def test_serve_is_ready_on_an_up_to_date_schema_and_503_on_drift(cli: Cli) -> None:
    cli("db", "deploy")
    port = _free_port()
    process = spawn(["serve", "--port", str(port), "--database-url", cli.url])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"

        cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))
        stale = httpx.get(f"{base}/readyz")
        assert stale.status_code == 503
        problem = stale.json()["problems"][0]
        assert problem["code"] == "drift_missing" and problem["migration"] == INVITES
        assert "workspace_invites" in problem["message"]
    finally:
        process.terminate()
        process.wait(timeout=10)
