"""Settings resolved in one place: which email backend is in effect; invalid settings told
plainly by the command line; the version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from tests.conftest import spawn
from workspaces import __version__
from workspaces.security import SecretKeyInvalid, secret_key
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


def test_an_unknown_backend_is_an_invalid_setting() -> None:
    with pytest.raises(ValidationError, match="Input should be 'smtp' or 'console'"):
        _settings(email_backend="sendmail", smtp_url=SMTP)


@pytest.mark.parametrize("smtp_url", [
    "smtp://:25", "smtp://u:pw@/", "smtps:///", "smtp://h:port", "http://h:25", "h:25"])
def test_an_smtp_url_without_a_server_is_an_invalid_setting(smtp_url: str) -> None:
    with pytest.raises(ValidationError, match="smtp_url"):
        _settings(smtp_url=smtp_url)


@pytest.mark.parametrize("key", ["...", "x" * 31, "ключ" * 3])
def test_a_secret_key_shorter_than_32_bytes_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        _settings(secret_key=key)
    assert _settings(secret_key="x" * 32).secret_key == "x" * 32
    assert _settings(secret_key="").secret_key is None  # set but empty: as unset


def test_settings_are_checked_together_by_every_command(tmp_path: Path) -> None:
    """Not only by `serve`: `db status` ran with a mistyped backend, and the docs' placeholder
    SECRET_KEY=... started the server."""
    code, out, err = _run("db", "status", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
                          EMAIL_BACKEND="smtpp", SMTP_URL="smtp://mailer:hunter2@:587",
                          SECRET_KEY="...")
    assert code == 1, out + err
    assert err.splitlines() == [
        "error[invalid_settings]: fix these settings (environment variables or .env):",
        "  SMTP_URL: Value error, must be smtp://[user:password@]host[:port] or "
        "smtps://[user:password@]host[:port], with a host.",
        "  EMAIL_BACKEND: Input should be 'smtp' or 'console' (it is 'smtpp').",
        "  SECRET_KEY: Value error, must be at least 32 bytes long; generate one with "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`."]
    assert "hunter2" not in out + err


def test_the_generated_key_file_is_made_once_whole_and_an_empty_one_is_refused(
        tmp_path: Path) -> None:
    settings = _settings(database_url=f"sqlite:///{tmp_path / 'w.db'}")
    start = threading.Barrier(8)

    def read_key() -> str:
        start.wait()
        return secret_key(settings)

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: read_key(), range(8)))
    key_file = tmp_path / "w.db.secret"
    assert keys == {key_file.read_text()} and len(key_file.read_text()) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["w.db.secret"]  # no temporary file left
    key_file.write_text("")
    with pytest.raises(SecretKeyInvalid, match=r"w\.db\.secret is empty"):
        secret_key(settings)


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
