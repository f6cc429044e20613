"""Settings read from the environment (and a `.env` file), once per process."""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workspaces.errors import AppError
from workspaces.logs import LogFormat, LogLevel

EmailMode = Literal["smtp", "console"]
Pooling = Literal["session", "transaction"]


class EmailMisconfigured(AppError):
    status, code = 500, "email_misconfigured"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///workspaces.db"
    # Links in emails are built from this.
    base_url: str = "http://127.0.0.1:8000"
    # smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465.
    smtp_url: str | None = None
    # smtp (deliver over SMTP_URL) or console (development: write emails to the log, deliver
    # none). Unset: smtp when SMTP_URL is set, otherwise console. Read it as `email_mode`.
    email_backend: EmailMode | None = None
    email_from: str = "Workspaces <no-reply@localhost>"
    # Encrypts invite links waiting in the email outbox; every instance needs the same one, of
    # at least SECRET_KEY_BYTES. Unset with the SQLite default: generated once into
    # `<database file>.secret`.
    secret_key: str | None = None

    @field_validator("smtp_url", "email_backend", "secret_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_names_a_server(cls, value: str | None) -> str | None:
        """Refused for every command, not at the first email: a URL delivery could not use."""
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 (a port that is no number raises here)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:password@]host[:port] or "
                             "smtps://[user:password@]host[:port], with a host")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_long_enough(cls, value: str | None) -> str | None:
        if value is not None and not long_enough(value):
            raise ValueError(f"must be at least {SECRET_KEY_BYTES} bytes long; generate one "
                             f"with `{MAKE_SECRET_KEY}`")
        return value
    invite_ttl_days: int = Field(default=7, ge=1, le=30)
    # Limits, counted in the database (they hold across instances); see docs/security.md.
    # Invite emails, created or re-sent: per workspace and per inviting user an hour, and per
    # recipient address from one inviting user a day; new invites to one recipient address
    # from everyone a day (re-sends not counted again), a higher ceiling.
    invite_rate_limit_per_hour: int = Field(default=50, ge=1)
    invite_limit_per_user_per_hour: int = Field(default=50, ge=1)
    invite_limit_per_recipient_per_day: int = Field(default=5, ge=1)
    invite_limit_per_recipient_all_senders_per_day: int = Field(default=20, ge=1)
    # Sign-ups (attempts) and workspace creations per client address an hour.
    signup_limit_per_client_per_hour: int = Field(default=20, ge=1)
    # Password reset requests per client address, and reset emails per account asked for from
    # one client address and from all of them (a higher ceiling), an hour; verification emails
    # an account may ask for again, an hour.
    password_reset_limit_per_client_per_hour: int = Field(default=20, ge=1)
    password_reset_limit_per_account_per_hour: int = Field(default=3, ge=1)
    password_reset_limit_per_account_all_clients_per_hour: int = Field(default=10, ge=1)
    verification_limit_per_account_per_hour: int = Field(default=3, ge=1)
    workspace_limit_per_client_per_hour: int = Field(default=20, ge=1)
    # Address-change links (profile) per account an hour: each mails an address of its choice;
    # to one address from one account a day; to one address from all accounts a day (an
    # account's requests for it counted once while its link is live), a higher ceiling.
    email_change_limit_per_account_per_hour: int = Field(default=5, ge=1)
    email_change_limit_per_recipient_per_day: int = Field(default=3, ge=1)
    email_change_limit_per_recipient_all_accounts_per_day: int = Field(default=10, ge=1)
    api_token_ttl_days: int = Field(default=30, ge=1)
    # Failed sign-ins per 15 minutes: for one account from one client address, for one account
    # from all addresses (distributed guessing), and from one client address over all accounts.
    # Only failures count; a success clears its address's failures for that account.
    signin_limit_per_account: int = Field(default=10, ge=1)
    signin_limit_per_account_all_clients: int = Field(default=100, ge=1)
    signin_limit_per_address: int = Field(default=50, ge=1)
    # Webhook test messages, and replays (each may queue every event kept), asked for in one
    # workspace an hour (the operator's commands are not counted).
    webhook_test_limit_per_workspace_per_hour: int = Field(default=30, ge=1)
    webhook_replay_limit_per_workspace_per_hour: int = Field(default=5, ge=1)
    # Proxies (IP addresses or CIDR networks, comma-separated) whose X-Forwarded-For is believed
    # when they connect; empty: the peer address is the client address.
    trusted_proxies: str = ""
    # Who may read GET /metrics: client addresses (as TRUSTED_PROXIES resolves them) in these
    # networks, and anyone sending `Authorization: Bearer <METRICS_TOKEN>` when it is set.
    metrics_allowed_networks: str = "127.0.0.0/8,::1"
    metrics_token: str | None = Field(default=None, min_length=16)

    # The instance's webhook receivers whose URL an operator set, in these networks (CIDR list),
    # are allowed and may use plain http; any other must be https and resolve only to public
    # addresses (docs/events.md#where-a-webhook-may-go). Workspaces' endpoints and URLs set by
    # service clients never use it.
    webhook_allowed_networks: str = ""
    # The same for workspaces' own endpoints (made by their admins) and URLs service clients
    # set: for development and tests only. In production leave it empty, or any workspace
    # admin (and any service client with webhooks:write) can reach those networks.
    workspace_webhook_allowed_networks: str = ""
    # Events are kept (in the feed, with their deliveries and attempts) this many days.
    event_retention_days: int = Field(default=30, ge=1)
    # After a secret rotation the previous secret keeps signing beside the new one this long.
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)
    # How often the webhook delivery loop looks for due deliveries (it is also woken by each
    # commit that queued some).
    webhook_poll_seconds: float = Field(default=2.0, gt=0)
    # Seconds before each retry of a failed webhook delivery (each with +-10% jitter), then it
    # is marked failed: the default is Svix's; shorter schedules are for tests and drills.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"

    # OpenID Connect (docs/integration.md). ID and access tokens (JWTs) live this long; refresh
    # tokens (scope offline_access) this many days, each rotated on use.
    access_token_ttl_minutes: int = Field(default=10, ge=1, le=1440)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    # How long relying parties may cache the JWKS; a rotated-in key signs only after this long,
    # so every cached key set already holds it.
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86400)
    # Token requests per (authenticated, confidential) client a minute, and from one client
    # address a minute; failed authentications of a client from one address an hour (then
    # that address is refused for that client for the hour: strangers lock out only themselves).
    token_limit_per_client_per_minute: int = Field(default=600, ge=1)
    token_limit_per_address_per_minute: int = Field(default=120, ge=1)
    client_auth_failures_per_client_per_hour: int = Field(default=20, ge=1)

    @field_validator("trusted_proxies", "metrics_allowed_networks", "webhook_allowed_networks",
                     "workspace_webhook_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str, info: ValidationInfo) -> str:
        """Refuse at start-up, not at the first request, a value that is no address list."""
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR network "
                                 f"({str(info.field_name).upper()} is comma-separated)"
                                 ) from None
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        """Refuse at start-up a schedule that is not positive numbers of seconds."""
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            delays = []
        if not delays or not all(0 < delay < 10**7 for delay in delays):
            raise ValueError("give positive numbers of seconds, comma-separated "
                             "(WEBHOOK_RETRY_SCHEDULE, e.g. 5,300,1800)")
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(","))

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """Blank is unset; surrounding whitespace (a secret file's trailing newline) is no
        part of the token."""
        value = value.strip() if isinstance(value, str) else value
        return None if value == "" else value

    # Argon2 hashes computed at once per server process (each takes a core for ~0.3 s); more
    # wait, and after `password_hash_wait_seconds` answer 503 server_busy.
    password_hash_concurrency: int = Field(default=1, ge=1)
    password_hash_wait_seconds: float = Field(default=10.0, gt=0)
    # Database connections per server worker (one kept for email and webhook delivery), and how
    # long a request waits for one before answering 503 server_busy.
    database_pool_size: int = Field(default=8, ge=1)
    database_pool_timeout: float = Field(default=10.0, gt=0)
    # How the server reaches PostgreSQL: session (directly, or a pooler that gives each client
    # connection one server connection for its life) or transaction (PgBouncer pool_mode=
    # transaction: no prepared statement outlives a round trip). `serve` refuses to start on
    # session when it finds a transaction pooler; schema commands always need session.
    database_pooling: Pooling = "session"
    # Request bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Email delivery: attempts before an address is marked failed, first retry delay (doubling
    # up to the maximum).
    # Defaults: 30 s, 1, 2, 4, 8 min, then every 15 min: the last try 4.75 hours after the first.
    email_max_attempts: int = Field(default=24, ge=1)
    email_retry_seconds: float = Field(default=30.0, gt=0)
    email_retry_max_seconds: float = Field(default=900.0, gt=0)
    email_poll_seconds: float = Field(default=2.0, gt=0)
    # The server's log (the application's, uvicorn's and the access lines): the least level
    # written (DEBUG, INFO, WARNING or ERROR; WARNING leaves out the access lines), and text
    # (for people) or json (one object per line, for log collectors). See logs.py.
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @field_validator("log_level", "log_format", "email_backend", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """`info`, `JSON` and `SMTP` are read as INFO, json and smtp; anything else is refused
        as given."""
        if not isinstance(value, str):
            return value
        allowed = get_args({"log_level": LogLevel, "log_format": LogFormat,
                            "email_backend": EmailMode}[str(info.field_name)])
        return next((a for a in allowed if a.lower() == value.strip().lower()), value)

    # Developers and tests only: a different folder of revisions than the packaged one.
    workspaces_migrations_dir: Path | None = None

    @property
    def email_mode(self) -> EmailMode:
        """The email backend in effect: EMAIL_BACKEND, else smtp exactly when SMTP_URL is set."""
        backend = self.email_backend or ("smtp" if self.smtp_url else "console")
        if backend == "console":
            return "console"
        if not self.smtp_url:
            raise EmailMisconfigured(
                "EMAIL_BACKEND=smtp but SMTP_URL is not set: no email could be delivered. Set "
                "SMTP_URL (smtp://user:pass@host:587 or smtps://host:465), or set "
                "EMAIL_BACKEND=console to write emails to the log instead (development only).")
        return "smtp"


# The least length of a key, in bytes; the command the docs print makes longer ones.
SECRET_KEY_BYTES = 32
MAKE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105


def long_enough(key: str) -> bool:
    """A key too short protects nothing (the docs' placeholder `...` started the server)."""
    return len(key.encode()) >= SECRET_KEY_BYTES


@lru_cache
def get_settings() -> Settings:
    return Settings()


_SECRET_PARTS = ("url", "secret", "password", "key", "token")  # their values are never repeated


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid setting, named as the environment spells it, with what is allowed
    (pydantic's sentence) and, for settings that hold no secret, the value given."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "settings"
        given = problem.get("input")
        shown = ""
        if isinstance(given, str | int | float) and not any(
                part in field for part in _SECRET_PARTS):
            shown = f" (it is {given!r})"
        lines.append(f"{field.upper()}: {problem['msg']}{shown}.")
    return lines
