"""The input limits of :class:`~telehub.config.Settings`: what one submission may be.

Every transport refuses the same oversized or far-future input, so the limits
are settings of their own, not of a transport.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    """``TELEHUB_MAX_*``: body size, readings per submission, future timestamps."""

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
