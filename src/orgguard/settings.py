"""Settings, read from ``ORGGUARD_*`` environment variables when the app starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORGGUARD_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///orgguard.db",
        description="SQLAlchemy URL of the policy database",
    )
    policy_dir: Path = Field(
        default=Path("policies"),
        description="loaded into an empty database on first start",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"
    max_batch: int = Field(default=1000, ge=1, le=10000, description="checks per batch")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="larger request bodies get 413"
    )
