"""Settings: one object, read from ``TELEHUB_*`` variables and an optional TOML file.

Every default is the embedded one, so a fresh checkout runs with no services.
Nothing here reads the environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
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

    environment: Literal["development", "production"] = Field(
        "development",
        description="a label for this deployment; nothing in telehub behaves differently by it yet",
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///./telehub.db",
        description="sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (search_path); created if missing"
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL: connections the pool keeps for requests (the batch writer "
        "has its own)",
    )
    database_connect_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="PostgreSQL: a connection not made within this, or a pooled one that "
        "does not answer a ping within it, is given up (503); also the deadline of "
        "/readyz's database check, on SQLite too",
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="PostgreSQL: a statement (a query, a device delete) not answered within "
        "this is abandoned with its connection and the request answers 503; migrations have "
        "no deadline",
    )
    database_commit_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="PostgreSQL: an ingest batch whose commit is not answered within this "
        "is abandoned with its connection and its senders answered 503 (it may or may not "
        "have been stored; a resent reading is stored once)",
    )

    http_host: str = Field(
        "127.0.0.1", description="address the HTTP API listens on (`--host`); 0.0.0.0 for all"
    )
    http_port: int = Field(
        8000, ge=0, le=65535, description="port of the HTTP API: REST, WebSocket, SSE (`--port`)"
    )
    http_workers: int = Field(
        1, ge=1, le=64, description="`telehub api` processes sharing the HTTP port"
    )
    http_tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (with any intermediates) to serve the REST API over "
        "HTTPS; needs http_tls_key_file",
    )
    http_tls_key_file: Path | None = Field(
        None, description="the unencrypted PEM private key of http_tls_cert_file"
    )
    http_access_log: bool = Field(
        False,
        description="uvicorn's access log, a line per request (credentials in URLs redacted)",
    )
    http_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a request head must be whole this long after the connection (or, kept "
        "alive, after its first byte); else 408 and the connection is closed",
    )
    http_body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="a request body must be whole this long after its head; else 408, the "
        "connection is closed and nothing of the request is used",
    )
    http_max_connections: int | None = Field(
        None,
        ge=1,
        description="HTTP connections per process (WebSockets not counted); at the cap a new "
        "one replaces the one waiting longest on its client. Default: half the open-file "
        "limit (ulimit -n), at most 10000",
    )

    ingest_queue_readings: int = Field(
        200_000,
        ge=10_000,
        description="readings accepted but not yet committed, at most; beyond it ingest "
        "answers 503 with Retry-After (gRPC: RESOURCE_EXHAUSTED)",
    )
    ingest_batch_readings: int = Field(
        20_000, ge=1, description="a commit holds at most this many readings"
    )
    ingest_batch_max_wait: float = Field(
        0.005,
        ge=0,
        le=0.5,
        description=(
            "with ingest_batch_quiet > 0: seconds the oldest queued reading waits, at most, "
            "for others to share its commit"
        ),
    )
    ingest_batch_quiet: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description=(
            "seconds a commit waits for company while submissions keep coming (at most "
            "ingest_batch_max_wait); 0: commit as soon as the writer is free"
        ),
    )
    ingest_gather_turns: int = Field(
        4,
        ge=0,
        le=64,
        description="event-loop turns the writer lets pass before it cuts a batch, so requests "
        "already read join this commit instead of waiting out the next (measured: +10-15 % "
        "single-reading POSTs at 16-64 clients; each turn costs microseconds when idle)",
    )
    ingest_inline_values: int = Field(
        32,
        ge=0,
        description="SQLite: a batch of at most this many values commits on the event loop's "
        "thread, skipping two thread hand-offs (about 0.8 ms on a busy 2-core host, several "
        "times the commit); larger ones, or any while another connection holds the write "
        "lock, go to the writer thread. 0: always the thread",
    )
    ingest_inline_budget_ms: float = Field(
        2.0,
        gt=0,
        description="SQLite: when inline commits average longer than this (a slow disk's "
        "fsync), the next ingest_inline_pause_batches batches go to the writer thread, so "
        "a slow disk never stalls the event loop",
    )
    ingest_inline_pause_batches: int = Field(
        1000,
        ge=1,
        description="SQLite: how many batches go to the writer thread once inline commits "
        "are over ingest_inline_budget_ms",
    )
    ingest_one_statement_rows: int = Field(
        1000,
        ge=0,
        description="PostgreSQL: a batch of fewer readings (no state, none old enough to "
        "touch rollups) is one statement from the event loop; larger ones go by COPY on "
        "the writer thread. 0: always COPY",
    )
    ingest_retry_after: float = Field(
        1.0, gt=0, description="seconds in the Retry-After of a full ingest queue's 503"
    )

    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="largest HTTP request body (413 beyond) and MQTT telemetry payload; an "
        "oversize telemetry body is counted and recorded as rejected (its first 512 bytes)",
    )
    max_batch_readings: int = Field(
        10_000, ge=1, description="readings in one request, message or gRPC batch, at most"
    )
    max_future_skew_seconds: float = Field(
        300.0, ge=0, description="readings timestamped further than this in the future are refused"
    )

    mqtt_url: str = Field(
        "embedded",
        description="embedded (amqtt inside `telehub serve`: one host, MQTT 3.1.1), "
        "mqtt://host:port or mqtts://host:port (Mosquitto, EMQX)",
    )
    mqtt_embedded_host: str = Field(
        "127.0.0.1", description="address the embedded MQTT broker listens on"
    )
    mqtt_embedded_port: int = Field(
        1883, ge=0, le=65535, description="port of the embedded MQTT broker (`--mqtt-port`)"
    )
    mqtt_username: str | None = Field(None, description="the bridge's login on an external broker")
    mqtt_password: SecretStr | None = Field(
        None, description="the password of mqtt_username on the external broker"
    )
    mqtt_tls_ca_file: Path | None = Field(
        None, description="CA bundle for mqtts:// (default: the system's trusted CAs)"
    )
    mqtt_client_id: str = Field(
        "telehub-bridge",
        min_length=1,
        max_length=64,
        description="fixed id of the bridge's persistent session; unique per bridge process",
    )
    mqtt_shared_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="subscribe through $share/<group>/ so several bridges split the stream",
    )
    mqtt_receive_maximum: int = Field(
        10_000, ge=1, le=65_535, description="messages in flight to the bridge before it acks"
    )
    mqtt_session_expiry_seconds: int = Field(
        7 * 86_400, ge=60, description="how long the broker keeps the bridge's queued messages"
    )
    mqtt_keepalive_seconds: int = Field(
        30, ge=5, le=3600, description="MQTT keep-alive of the bridge's connection to the broker"
    )
    mqtt_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often the bridge publishes to itself to prove its subscriptions "
        "still hold; after three missed it subscribes again",
    )
    mqtt_dynsec_username: str | None = Field(
        None,
        description="an admin login of Mosquitto's dynamic-security plugin: set it, and "
        "telehub keeps each device's broker login and topic ACL in step with its devices",
    )
    mqtt_dynsec_password: SecretStr | None = Field(
        None, description="the password of mqtt_dynsec_username"
    )
    mqtt_dynsec_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="how long a device change waits for the broker"
    )
    command_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="how often a bridge looks for commands queued by other processes",
    )

    bus_url: str = Field(
        "memory",
        description="memory (one process) or redis://host:port/db (several processes)",
    )
    bus_channel_prefix: str = Field(
        "telehub",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Redis channel names start with this (one prefix per deployment)",
    )
    bus_subscriber_backlog: int = Field(
        50_000,
        ge=100,
        description="readings (or events) waiting for one live subscriber before its "
        "oldest are dropped and it is sent a gap; messages are shared between subscribers, "
        "so this bounds delay more than memory",
    )
    event_log_keep: int = Field(
        100_000, ge=100, description="events kept for SSE clients resuming with Last-Event-ID"
    )
    events_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often the event feed checks the log for missed events"
    )
    ws_frame_interval_seconds: float = Field(
        0.025,
        ge=0,
        le=1,
        description="readings for one WebSocket client are coalesced into one frame per interval",
    )
    ws_max_connections: int = Field(
        20_000, ge=1, description="WebSocket clients per process; more are closed with 1013"
    )
    ws_ping_interval_seconds: float = Field(
        20.0, gt=0, description="the server pings each WebSocket client this often"
    )
    ws_ping_timeout_seconds: float = Field(
        20.0, gt=0, description="a client that does not answer a ping within this is dropped"
    )
    ws_compression: bool = Field(
        False, description="permessage-deflate: less bandwidth, about 3x the memory per client"
    )
    ws_max_message_bytes: int = Field(
        64 * 1024, ge=1024, description="largest message a WebSocket client may send"
    )
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, le=300, description="a comment line is sent when nothing else was"
    )
    sse_retry_ms: int = Field(3000, ge=100, description="reconnect delay advised to SSE clients")
    live_ticket_seconds: int = Field(
        30,
        ge=1,
        le=600,
        description="a ticket from POST /api/v1/live/tickets opens one WebSocket or SSE "
        "stream within this many seconds",
    )

    grpc_host: str = Field(
        "127.0.0.1", description="address the gRPC server listens on (`--host` of `telehub grpc`)"
    )
    grpc_port: int = Field(
        50051, ge=0, le=65535, description="port of the gRPC server (`--grpc-port`)"
    )
    grpc_max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024, description="largest gRPC message received or sent"
    )
    grpc_grace_seconds: float = Field(
        10.0, ge=0, description="on shutdown, in-flight gRPC calls get this long to finish"
    )
    grpc_stream_window_readings: int = Field(
        20_000,
        ge=1,
        description="readings of one Publish stream in flight to the writer (at least a batch)",
    )
    grpc_health_interval_seconds: float = Field(
        5.0, gt=0, description="how often the gRPC health service checks the database"
    )

    metrics_host: str = Field(
        "127.0.0.1",
        description="address of the metrics listener of `telehub grpc` and `telehub ingest`",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`telehub grpc` and `telehub ingest` serve Prometheus metrics here",
    )

    rollup_lag_seconds: float = Field(
        120.0,
        ge=2,
        le=86_400,
        description="rollups are built only for data older than this; newer data is always "
        "read raw, and a batch holding a reading older than half of it merges that reading "
        "into rollups already built",
    )
    rollup_interval_seconds: float = Field(
        60.0,
        ge=0,
        description="`telehub serve` runs a rollup build pass this often (0: never)",
    )

    rejected_keep: int = Field(
        10_000, ge=1, description="rejected inputs kept for GET /api/v1/rejected"
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="how long a verified token is trusted without a lookup (a revocation "
        "reaches every process through the bus at once); also how often live sessions' API "
        "tokens are checked again (not more often than once a second)",
    )

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
