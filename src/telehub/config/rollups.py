"""The rollups group of :class:`~telehub.config.Settings`: when aggregates are built."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RollupSettings(BaseModel):
    """``TELEHUB_ROLLUP_*``: how old data must be to be rolled up, and how often."""

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
