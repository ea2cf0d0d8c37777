"""Settings, read from ``ORGGUARD_*`` environment variables when the app starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orgguard.logs import LogFormat


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
    log_format: LogFormat = Field(
        default="json",
        description="json: one JSON object per line; text: plain lines",
    )
    access_log: bool = Field(
        default=False,
        description="uvicorn's line per request (off: checks are the hot path)",
    )
    max_batch: int = Field(default=1000, ge=1, le=10000, description="checks per batch")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="larger request bodies get 413"
    )
    admin_inherits: bool = Field(
        default=True,
        description="a parent company's admins administer its subsidiaries",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret for people's bearer tokens"
    )
    jwt_public_key: Path | None = Field(
        default=None, description="PEM public key (RS256 or ES256) for tokens"
    )
    jwt_jwks_file: Path | None = Field(
        default=None, description="JWKS file (RS256 or ES256 keys, by kid)"
    )
    jwt_issuer: str | None = Field(default=None, description="required iss")
    jwt_audience: str | None = Field(default=None, description="required aud")
    refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        description="how often to look for writes by other processes, as a "
        "backstop: on PostgreSQL, LISTEN/NOTIFY brings them at once",
    )
    min_revision_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="how long a request with min_revision waits for it (then 503)",
    )
    shutdown_seconds: int = Field(
        default=10,
        ge=1,
        description="on SIGTERM, how long in-flight requests may take to finish",
    )

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # RFC 7518, section 3.2: an HS256 key has at least 256 bits.
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (RFC 7518, 3.2)")
        return value
