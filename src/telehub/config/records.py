"""The records and authentication group of :class:`~telehub.config.Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RecordSettings(BaseModel):
    """Rejected inputs kept, and how long a verified token is trusted."""

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
