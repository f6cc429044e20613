"""Settings resolved in one place: which email backend is in effect."""

from __future__ import annotations

import pytest

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
