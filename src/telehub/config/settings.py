"""The one :class:`Settings` of telehub, joined from its groups, and how it is loaded.

A group's fields are declared in its own module (``database.py``, ``http_api.py``,
…); here are what spans groups: the checks that compare fields of several, the
values derived from them, and the sources they are read from (``TELEHUB_*``
variables, then the TOML file ``TELEHUB_CONFIG_FILE`` names).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from telehub.config.database import DatabaseSettings
from telehub.config.grpc_server import GrpcSettings
from telehub.config.http_api import HttpSettings
from telehub.config.ingest import IngestSettings
from telehub.config.limits import LimitSettings
from telehub.config.live import LiveSettings
from telehub.config.metrics import MetricsSettings
from telehub.config.mqtt import MqttSettings
from telehub.config.records import RecordSettings
from telehub.config.rollups import RollupSettings

CONFIG_FILE_ENV = "TELEHUB_CONFIG_FILE"


class GeneralSettings(BaseModel):
    """What describes the deployment as a whole rather than one of its parts."""

    environment: Literal["development", "production"] = Field(
        "development",
        description="a label for this deployment; nothing in telehub behaves differently by it yet",
    )


# pydantic orders fields from the last base to the first, so the groups are listed
# last-shown first: the fields keep the order of the configuration page (the docs
# generate it from Settings.model_fields, and validation reports in this order).
class Settings(
    RecordSettings,
    RollupSettings,
    MetricsSettings,
    GrpcSettings,
    LiveSettings,
    MqttSettings,
    LimitSettings,
    IngestSettings,
    HttpSettings,
    DatabaseSettings,
    GeneralSettings,
    BaseSettings,
):
    """All of telehub's configuration. Production swaps URLs only."""

    model_config = SettingsConfigDict(env_prefix="TELEHUB_", extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.http_tls_cert_file is None) != (self.http_tls_key_file is None):
            given, missing = ("CERT", "KEY") if self.http_tls_key_file is None else ("KEY", "CERT")
            raise ValueError(
                f"TELEHUB_HTTP_TLS_{given}_FILE is set but TELEHUB_HTTP_TLS_{missing}_FILE "
                "is not: HTTPS needs both (or neither, for plain HTTP)"
            )
        if self.ingest_queue_readings < self.max_batch_readings:
            raise ValueError("ingest_queue_readings must be >= max_batch_readings")
        if self.mqtt_url != "embedded" and not self.mqtt_url.startswith(("mqtt://", "mqtts://")):
            raise ValueError("mqtt_url must be embedded, mqtt://host:port or mqtts://host:port")
        if self.mqtt_dynsec_username and self.mqtt_url == "embedded":
            raise ValueError(
                "mqtt_dynsec_username is for an external Mosquitto (mqtt_url=mqtt://…); "
                "the embedded broker checks device tokens itself"
            )
        if self.bus_url != "memory" and not self.bus_url.startswith(("redis://", "rediss://")):
            raise ValueError("bus_url must be memory, redis://host:port/db or rediss://…")
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return self

    @property
    def http_scheme(self) -> Literal["http", "https"]:
        """How the REST API is served: https once a certificate and key are set."""
        return "https" if self.http_tls_cert_file is not None else "http"

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
