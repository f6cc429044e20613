"""Settings read from the environment (and a `.env` file), once per process."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///workspaces.db"
    # Links in emails are built from this.
    base_url: str = "http://127.0.0.1:8000"
    # smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465; unset: print emails.
    smtp_url: str | None = None
    email_from: str = "Workspaces <no-reply@localhost>"
    # Encrypts invite links waiting in the email outbox; every instance needs the same one.
    # Unset with the SQLite default: generated once into `<database file>.secret`.
    secret_key: str | None = None
    invite_ttl_days: int = Field(default=7, ge=1, le=30)
    invite_rate_limit_per_hour: int = Field(default=50, ge=1)
    api_token_ttl_days: int = Field(default=30, ge=1)
    # Sign-in attempts per 15 minutes, per account and per client address (stops guessing).
    signin_limit_per_account: int = Field(default=10, ge=1)
    signin_limit_per_address: int = Field(default=50, ge=1)
    # Database connections per server worker (one of them kept for email delivery), and how
    # long a request waits for one before answering 503 server_busy.
    database_pool_size: int = Field(default=8, ge=1)
    database_pool_timeout: float = Field(default=10.0, gt=0)
    # Request bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Email delivery: attempts before an address is marked failed, first retry delay (doubling
    # up to the maximum).
    # Defaults: 30 s, 1, 2, 4, 8 min, then every 15 min: the last try 4.75 hours after the first.
    email_max_attempts: int = Field(default=24, ge=1)
    email_retry_seconds: float = Field(default=30.0, gt=0)
    email_retry_max_seconds: float = Field(default=900.0, gt=0)
    email_poll_seconds: float = Field(default=2.0, gt=0)
    # Developers and tests only: a different folder of revisions than the packaged one.
    workspaces_migrations_dir: Path | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
