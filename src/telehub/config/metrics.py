"""The metrics listener of :class:`~telehub.config.Settings`.

``telehub grpc`` and ``telehub ingest`` serve no HTTP API, so their Prometheus
metrics need a listener of their own.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    """``TELEHUB_METRICS_*``: where the processes without an HTTP API serve metrics."""

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
