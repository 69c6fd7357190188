"""Helpers shared by the service tests: readings at fixed offsets, query shortcuts."""

from __future__ import annotations

from typing import Any

from telehub.core.telemetry import SeriesQuery
from telehub.domain.devices import Principal, Scope
from telehub.domain.readings import Reading, Telemetry, from_micros
from telehub.hub import Hub

MINUTE_US = 60_000_000
# A whole minute since the epoch, so bucket bounds are easy to state.
BASE_US = (1_700_000_000_000_000 // MINUTE_US) * MINUTE_US
WRITER = Principal(scope=Scope.WRITE, token_id="t-writer")


def readings(device_id: str, metric: str, points: dict[int, float]) -> Telemetry:
    """Readings at ``BASE_US + offset`` seconds."""
    return Telemetry(
        device_id=device_id,
        readings=tuple(
            Reading(device_id, metric, BASE_US + s * 1_000_000, v) for s, v in points.items()
        ),
        state=(),
    )


def query(start_s: int = 0, end_s: int = 600, **options: Any) -> SeriesQuery:
    """All metrics from ``BASE_US + start_s`` to ``BASE_US + end_s`` (seconds)."""
    defaults = {"interval": None, "agg": None, "limit": 1000, "desc": False}
    return SeriesQuery(
        metrics=None,
        start=from_micros(BASE_US + start_s * 1_000_000),
        end=from_micros(BASE_US + end_s * 1_000_000),
        **(defaults | options),
    )


async def device_with_data(hub: Hub, points: dict[int, float]) -> str:
    device, _ = await hub.devices.create(device_id="sensor-1", name=None, attributes={})
    await hub.ingest.submit(
        WRITER, readings(device.id, "temp", points), transport="test", payload=b""
    )
    return device.id
