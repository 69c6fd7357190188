"""Telemetry out: range queries, server-side buckets, latest values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from telehub.core.ports import Aggregate, LatestValues, Point, SeriesRange, Store
from telehub.domain.readings import is_metric_name, to_micros
from telehub.errors import FieldError, InvalidInput, NotFound

_INTERVAL_RE = re.compile(r"^([1-9][0-9]{0,8})(ms|s|m|h|d)$")
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
MAX_POINTS = 10_000
MAX_METRICS_PER_QUERY = 50
DEFAULT_WINDOW = timedelta(hours=24)


def parse_interval(text: str) -> int:
    """``30s``, ``1m``, ``1h``, ``1d`` (also ``ms``) as microseconds."""
    match = _INTERVAL_RE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            "interval must be a positive number with a unit: ms, s, m, h or d (e.g. 1m)",
            [FieldError(detail="not an interval like 30s, 1m, 1h, 1d", parameter="interval")],
        )
    return int(match.group(1)) * _UNIT_US[match.group(2)]


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    metrics: list[str] | None
    start: datetime | None
    end: datetime | None
    interval: str | None
    agg: Aggregate
    limit: int
    desc: bool


class TelemetryService:
    """Telemetry out: range queries, buckets, latest values (in: core/ingest_gate.py)."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def query(self, device_id: str, q: SeriesQuery) -> dict[str, list[Point]]:
        """Raw points, or buckets aggregated server-side when ``interval`` is given."""
        await self._require_device(device_id)
        end = q.end or datetime.now(UTC)
        start = q.start or end - DEFAULT_WINDOW
        start_us, end_us = to_micros(_utc(start)), to_micros(_utc(end))
        if start_us >= end_us:
            raise InvalidInput(
                "from must be before to", [FieldError(detail="not before to", parameter="from")]
            )
        metrics = q.metrics or await self._store.readings.metrics(device_id)
        bad = [m for m in metrics if not is_metric_name(m)]
        if bad:
            raise InvalidInput(
                f"invalid metric name {bad[0]!r}",
                [FieldError(detail="must match [A-Za-z0-9_.-]{1,64}", parameter="metric")],
            )
        if len(metrics) > MAX_METRICS_PER_QUERY:
            raise InvalidInput(
                f"at most {MAX_METRICS_PER_QUERY} metrics per query",
                [FieldError(detail="too many metrics", parameter="metric")],
            )
        ranges = [SeriesRange(device_id, m, start_us, end_us, q.limit, q.desc) for m in metrics]
        if q.interval is None:
            return {r.metric: await self._store.readings.points(r) for r in ranges}
        width = parse_interval(q.interval)
        first_bucket = (start_us // width) * width
        if -(-(end_us - first_bucket) // width) > MAX_POINTS:
            raise InvalidInput(
                f"the range holds more than {MAX_POINTS} buckets of {q.interval}",
                [FieldError(detail="interval too small for the range", parameter="interval")],
            )
        return {
            r.metric: await self._store.readings.buckets(r, width_us=width, agg=q.agg)
            for r in ranges
        }

    async def latest(self, device_id: str) -> LatestValues:
        await self._require_device(device_id)
        return await self._store.readings.latest(device_id)

    async def _require_device(self, device_id: str) -> None:
        if await self._store.devices.get(device_id) is None:
            raise NotFound(f"device {device_id!r} does not exist")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
