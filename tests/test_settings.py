"""Settings resolved in one place: which email backend is in effect; invalid settings told
plainly by the command line; the version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from tests.conftest import spawn
from workspaces import __version__
from workspaces.settings import EmailMisconfigured, Settings

SMTP = "smtp://127.0.0.1:2525"


def _settings(**values: str | None) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(("backend", "smtp_url", "mode"), [
    (None, None, "console"),
    ("", "", "console"),  # set but empty in the environment: as unset
    (None, SMTP, "smtp"),
    ("smtp", SMTP, "smtp"),
    ("console", None, "console"),
    ("console", SMTP, "console"),  # printing on purpose even with a server configured
    ("SMTP", SMTP, "smtp"),
])
def test_the_email_mode_follows_email_backend_else_smtp_url(
        backend: str | None, smtp_url: str | None, mode: str) -> None:
    assert _settings(email_backend=backend, smtp_url=smtp_url).email_mode == mode


def test_smtp_without_a_server_is_a_configuration_error() -> None:
    with pytest.raises(EmailMisconfigured, match="EMAIL_BACKEND=smtp but SMTP_URL is not set"):
        _ = _settings(email_backend="smtp").email_mode


def test_an_unknown_backend_is_a_configuration_error() -> None:
    with pytest.raises(EmailMisconfigured, match="must be smtp or console, not 'sendmail'"):
        _ = _settings(email_backend="sendmail", smtp_url=SMTP).email_mode


def test_the_environment_sets_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_BACKEND", "console")
    monkeypatch.setenv("SMTP_URL", SMTP)
    assert Settings(_env_file=None).email_mode == "console"  # type: ignore[call-arg]


def _run(*args: str, **env: str) -> tuple[int, str, str]:
    process = spawn(list(args), {"DATABASE_URL": None, **env})
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_invalid_settings_are_one_line_each_naming_the_variable_without_a_traceback(
        tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, out, err = _run("db", "status", "--database-url", db, INVITE_TTL_DAYS="99",
                          EMAIL_POLL_SECONDS="soon", SECRET_KEY="")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert err.splitlines() == [
        "error[invalid_settings]: fix these settings (environment variables or .env):",
        "  INVITE_TTL_DAYS: Input should be less than or equal to 30 (it is '99').",
        "  EMAIL_POLL_SECONDS: Input should be a valid number, unable to parse string as a "
        "number (it is 'soon')."]
    code, out, err = _run("db", "status", "--json", "--database-url", db,
                          INVITE_TTL_DAYS="0")
    assert code == 1 and "Traceback" not in err
    error = json.loads(out)["error"]
    assert error["code"] == "invalid_settings" and error["exit_code"] == 1
    assert error["problems"] == [
        "INVITE_TTL_DAYS: Input should be greater than or equal to 1 (it is '0')."]


def test_a_secret_setting_is_named_but_its_value_never_printed(tmp_path: Path) -> None:
    code, out, err = _run("db", "status", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
                          DATABASE_POOL_SIZE="8", SMTP_URL="smtp://u:hunter2@h:25",
                          PASSWORD_HASH_WAIT_SECONDS="-1")
    assert code == 1
    assert "PASSWORD_HASH_WAIT_SECONDS: Input should be greater than 0." in err
    assert "hunter2" not in out + err


def test_version_option_and_command_print_the_version() -> None:
    for args in (["--version"], ["version"]):
        code, out, err = _run(*args)
        assert (code, out.strip(), err) == (0, __version__, "")


def test_shell_completion_scripts_and_completing_a_command() -> None:
    for shell, marker in (("bash", "complete -o default -F _workspaces_completion workspaces"),
                          ("zsh", "#compdef workspaces"),
                          ("fish", "complete --command workspaces")):
        code, out, err = _run(_WORKSPACES_COMPLETE=f"source_{shell}")
        assert code == 0 and marker in out, (shell, out, err)
    code, out, err = _run("--show-completion")  # the shell this runs in, whichever it is
    assert code == 0 and "_WORKSPACES_COMPLETE=complete_" in out, out + err
    # What the bash script asks the program when Tab is pressed after `workspaces db st`.
    code, out, _ = _run(_WORKSPACES_COMPLETE="complete_bash", COMP_WORDS="workspaces db st",
                        COMP_CWORD="2")
    assert (code, out.split()) == (0, ["status"])
    code, out, _ = _run(_WORKSPACES_COMPLETE="complete_bash",
                        COMP_WORDS="workspaces db status --js", COMP_CWORD="3")
    assert (code, out.split()) == (0, ["--json"])


def test_env_example_lists_every_setting_with_its_default_and_meaning() -> None:
    """.env.example is the list of settings an operator copies: none missing, none stale, each
    default the one Settings uses, each with a comment saying what it means."""
    lines = (Path(__file__).resolve().parent.parent / ".env.example").read_text().splitlines()
    setting = re.compile(r"# ([A-Z][A-Z0-9_]*)=(.*)")
    shown: dict[str, str] = {}
    explained = False
    for line in lines:
        if match := setting.fullmatch(line):
            assert explained, f"{match[1]} has no comment above it saying what it means"
            shown[match[1]] = match[2]
        else:
            explained = line.startswith("# ") and not line.startswith("# ---")
    fields = Settings.model_fields
    assert set(shown) == {name.upper() for name in fields}
    for name, field in fields.items():
        default, value = field.get_default(call_default_factory=True), shown[name.upper()]
        if default is None:
            assert value == "", name
        else:
            assert field.annotation is not None, name
            assert TypeAdapter(field.annotation).validate_python(value) == default, name


def test_metrics_settings_are_checked_at_start_and_the_token_never_printed(
        tmp_path: Path) -> None:
    code, out, err = _run("db", "status", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
                          METRICS_ALLOWED_NETWORKS="10.0.0.0/8,the office",
                          METRICS_TOKEN="tiny-secret")
    assert code == 1
    assert err.splitlines()[1:] == [
        "  METRICS_ALLOWED_NETWORKS: Value error, 'the office' is not an IP address or CIDR "
        "network (METRICS_ALLOWED_NETWORKS is comma-separated) (it is '10.0.0.0/8,the office').",
        "  METRICS_TOKEN: String should have at least 16 characters."]
    assert "tiny-secret" not in out + err
    assert Settings(_env_file=None, metrics_token="").metrics_token is None  # type: ignore[call-arg]
    # A token read from a secret file keeps no trailing newline.
    token = Settings(_env_file=None, metrics_token="a-long-enough-token\n")  # type: ignore[call-arg]
    assert token.metrics_token == "a-long-enough-token"


def test_help_imports_no_settings_database_or_web_library(tmp_path: Path) -> None:
    """`workspaces --help` loads the command line and nothing it does not use (settings are
    read only by commands, and only when they run)."""
    process = subprocess.run([sys.executable, "-X", "importtime", "-m", "workspaces", "--help"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert process.returncode == 0 and "db" in process.stdout
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in process.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in imported
    assert not imported & {"pydantic", "pydantic_settings", "sqlalchemy", "alembic", "fastapi",
                           "argon2", "psycopg"}, sorted(imported)
