"""What `workspaces serve` says at start about email, as a real process."""

from __future__ import annotations

import subprocess

from tests.conftest import Cli, free_port, server_log, serving, spawn, wait_until_up

ENV = {"SECRET_KEY": "serve-test-secret-key-of-enough-length", "DATABASE_URL": ""}
NO_EMAIL_SETTINGS = {"SMTP_URL": "", "EMAIL_BACKEND": ""}  # whatever the tester's shell has
LOUD = "WARNING:  EMAILS WILL NOT BE DELIVERED"
NOTICE = "EMAIL_BACKEND=console: emails are written to this log and sent to nobody"


def _started_output(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Stdout and stderr of a `serve` that started, answered /healthz, and was stopped."""
    port = free_port()
    process = spawn(["serve", "--port", str(port), *args], {**ENV, **env})
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process, process.communicate)
    finally:
        process.terminate()
        try:
            out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    return out, err


def test_smtp_without_smtp_url_stops_serve_before_it_touches_the_database(
        sqlite_url: str) -> None:
    process = spawn(["serve", "--port", str(free_port()), "--database-url", sqlite_url],
                    {**ENV, "SMTP_URL": "", "EMAIL_BACKEND": "smtp"})
    code = process.wait(timeout=30)
    out, err = process.communicate()
    assert code == 1, out + err
    assert err.startswith("error[email_misconfigured]: EMAIL_BACKEND=smtp but SMTP_URL is not "
                          "set"), err
    assert "EMAIL_BACKEND=console" in err and "Traceback" not in err
    assert Cli(sqlite_url, {}).tables() == set()  # no migration ran


def test_serve_on_postgresql_without_smtp_warns_loudly_on_stderr(pg_url: str) -> None:
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0
    out, err = _started_output(["--database-url", pg_url], NO_EMAIL_SETTINGS)
    warning = [line for line in err.splitlines() if line.startswith("WARNING:  ")]
    assert warning[0].startswith(LOUD), err
    assert len(warning) >= 4
    block = "\n".join(warning)
    assert "invite link included" in block and "sent to nobody" in block
    assert "set SMTP_URL" in block and "set EMAIL_BACKEND=console to say so" in block
    assert LOUD not in out and "Serving on" in err  # the whole server log is on stderr


def test_serve_says_one_line_when_console_is_chosen_or_the_database_is_sqlite(
        pg_url: str, sqlite_url: str) -> None:
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0
    chosen = {**NO_EMAIL_SETTINGS, "EMAIL_BACKEND": "console"}
    with serving(["--database-url", pg_url], chosen) as (_, process):
        pass
    for_postgres = server_log(process)
    with serving(["--database-url", sqlite_url], {**NO_EMAIL_SETTINGS, "SECRET_KEY": ""}) \
            as (_, process):
        pass
    for_sqlite = server_log(process)
    for output in (for_postgres, for_sqlite):
        assert LOUD not in output
        assert [line for line in output.splitlines() if "EMAIL_BACKEND" in line] == [
            f"INFO:     {NOTICE} (development; set SMTP_URL to deliver them)."]


def test_serve_says_nothing_about_email_when_it_is_delivered(sqlite_url: str) -> None:
    env = {"SMTP_URL": f"smtp://127.0.0.1:{free_port()}", "EMAIL_BACKEND": "", "SECRET_KEY": ""}
    with serving(["--database-url", sqlite_url], env) as (_, process):
        pass
    assert "EMAIL_BACKEND" not in server_log(process)
