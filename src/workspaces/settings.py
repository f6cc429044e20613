"""Settings read from the environment (and a `.env` file), once per process."""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///workspaces.db"
    # Developers and tests only: a different folder of revisions than the packaged one.
    workspaces_migrations_dir: Path | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
