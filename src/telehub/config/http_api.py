"""The HTTP group of :class:`~telehub.config.Settings`: the REST, WebSocket and SSE listener.

Besides where it listens, the timeouts and the connection cap live here: they
keep slow or idle clients from holding the API's connections.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

# What a browser sends as Origin: scheme://host[:port], no path, no trailing slash.
_ORIGIN = re.compile(r"https?://[^/\s]+")


class HttpSettings(BaseModel):
    """``TELEHUB_HTTP_*``: address, workers, TLS, access log and per-connection limits."""

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
    http_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins (`https://dash.example.com`, no path) whose browser pages may "
        "call the HTTP API, the telemetry POST included (CORS); comma-separated in the "
        "variable, a list in TOML; `*` for any. Empty: no CORS headers, so browsers let "
        "only pages served by the hub itself read its answers",
    )

    @field_validator("http_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("http_cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port] (no path, no "
                    "trailing slash), or *"
                )
        return origins
