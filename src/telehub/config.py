"""Settings: one object, read from ``TELEHUB_*`` variables and an optional TOML file.

Every default is the embedded one, so a fresh checkout runs with no services.
Nothing here reads the environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "TELEHUB_CONFIG_FILE"


class Settings(BaseSettings):
    """All of telehub's configuration. Production swaps URLs only."""

    model_config = SettingsConfigDict(env_prefix="TELEHUB_", extra="forbid", frozen=True)

    environment: Literal["development", "production"] = "development"

    database_url: str = Field(
        "sqlite+aiosqlite:///./telehub.db",
        description="sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (search_path); created if missing"
    )
    database_pool_size: int = Field(10, ge=1, le=200)

    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)
    http_workers: int = Field(
        1, ge=1, le=64, description="`telehub api` processes sharing the HTTP port"
    )

    ingest_queue_readings: int = Field(
        200_000, ge=10_000, description="readings accepted but not yet committed, at most"
    )
    ingest_batch_readings: int = Field(
        20_000, ge=1, description="a commit holds at most this many readings"
    )
    ingest_batch_max_wait: float = Field(
        0.005,
        ge=0,
        le=0.5,
        description="seconds the oldest queued reading waits for others to share its commit",
    )
    ingest_retry_after: float = Field(1.0, gt=0, description="Retry-After sent when full")

    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_batch_readings: int = Field(10_000, ge=1)
    max_future_skew_seconds: float = Field(300.0, ge=0)

    rejected_keep: int = Field(10_000, ge=1, description="rejected inputs kept for inspection")
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="how long a verified token is trusted without a lookup"
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.ingest_queue_readings < self.max_batch_readings:
            raise ValueError("ingest_queue_readings must be >= max_batch_readings")
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from overrides, then ``TELEHUB_*`` variables, then the config file."""
    return Settings(**overrides)
