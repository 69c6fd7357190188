"""Telemetry out: range queries in pages, server-side buckets, latest values.

A query answers at most ``limit`` points (raw readings or buckets) per metric.
When a metric has more, the page says so (``truncated``) and carries ``next``,
a cursor: the query itself (device, window, interval, aggregate, order, page
size) and, per metric not yet finished, the timestamp of the last point given.
The next page continues each metric strictly after (before, newest first) that
timestamp: a series holds one reading per timestamp (its key), so no point is
given twice or skipped, whatever the timestamps of other metrics. The window is
pinned on the first page, so a default ``to`` (now) does not move between pages.

Parameter names in messages are the REST API's, in backticks; the gRPC adapter
renames them (``from`` is ``start`` there).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from telehub.core.ports import Aggregate, LatestValues, Point, SeriesRange, Store
from telehub.domain.readings import is_metric_name, to_micros
from telehub.errors import FieldError, InvalidInput, NotFound

_INTERVAL_RE = re.compile(r"^([1-9][0-9]{0,8})(ms|s|m|h|d)$")
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
MAX_POINTS = 10_000  # buckets a query may span, and points a page may hold per metric
DEFAULT_LIMIT = 1000
MAX_METRICS_PER_QUERY = 50
DEFAULT_WINDOW = timedelta(hours=24)
_CURSOR_VERSION = 1
# Bucket widths a refusal suggests, narrowest first.
_NICE = (
    *("1ms", "10ms", "100ms", "1s", "5s", "10s", "15s", "30s"),
    *("1m", "5m", "10m", "15m", "30m", "1h", "2h", "3h", "6h", "12h"),
    *("1d", "2d", "7d", "14d", "30d", "90d", "365d"),
)


def parse_interval(text: str) -> int:
    """``30s``, ``1m``, ``1h``, ``1d`` (also ``ms``) as microseconds."""
    match = _INTERVAL_RE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            "interval must be a positive number with a unit: ms, s, m, h or d (e.g. 1m)",
            [FieldError(detail="not an interval like 30s, 1m, 1h, 1d", parameter="interval")],
        )
    return int(match.group(1)) * _UNIT_US[match.group(2)]


def bucket_count(start_us: int, end_us: int, width_us: int) -> int:
    """Buckets of ``width_us`` (aligned on the epoch) that ``start <= ts < end`` touches."""
    first = (start_us // width_us) * width_us
    return -(-(end_us - first) // width_us)


def fitting_interval(start_us: int, end_us: int, most: int) -> str:
    """The narrowest round width that cuts the range into at most ``most`` buckets."""
    for text in _NICE:
        if bucket_count(start_us, end_us, parse_interval(text)) <= most:
            return text
    days = -(-(end_us - start_us) // (_UNIT_US["d"] * (most - 1)))
    return f"{days}d"


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """A query as asked: None is "not given" (the default, or the cursor's value).

    With ``cursor``, the other fields may be left out; any given must be what the
    cursor's query had, but ``limit``, the page size, may change from page to page.
    """

    metrics: list[str] | None
    start: datetime | None
    end: datetime | None
    interval: str | None
    agg: Aggregate | None = None  # with an interval; None: avg
    limit: int | None = None  # points per metric in a page; None: 1000
    desc: bool | None = None
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class SeriesPage:
    """One page: ``series`` by metric; ``truncated`` names the metrics with more points
    than this page holds, and ``next`` is the cursor to the rest (None: nothing left)."""

    series: dict[str, list[Point]]
    interval: str | None
    agg: Aggregate | None
    truncated: list[str]
    next: str | None
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """A query resolved: the pinned window, and where each metric goes on from
    (None: its first point; else the timestamp of the last point given)."""

    device_id: str
    start_us: int
    end_us: int
    interval: str | None
    agg: Aggregate | None
    desc: bool
    limit: int
    after: dict[str, int | None]


class TelemetryService:
    """Telemetry out: range queries, buckets, latest values (in: core/ingest_gate.py)."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def query(self, device_id: str, q: SeriesQuery) -> dict[str, list[Point]]:
        """The first page's points by metric (see :meth:`page` for the rest)."""
        return (await self.page(device_id, q)).series

    async def page(self, device_id: str, q: SeriesQuery) -> SeriesPage:
        """Raw points, or buckets aggregated server-side when ``interval`` is given:
        at most ``limit`` per metric, and the cursor to the rest."""
        await self._require_device(device_id)
        plan = _resumed(device_id, q) if q.cursor is not None else await self._planned(device_id, q)
        width = parse_interval(plan.interval) if plan.interval is not None else None
        if width is not None:
            _check_buckets(plan, width)
        series: dict[str, list[Point]] = {}
        going_on: dict[str, int | None] = {}
        for metric, after in plan.after.items():
            start, end = plan.start_us, plan.end_us
            if after is not None and plan.desc:
                end = after
            elif after is not None:
                start = after + (width or 1)
            points: list[Point] = []
            if start < end:
                # One more than a page holds tells whether the metric goes on.
                points = await self._points(
                    SeriesRange(device_id, metric, start, end, plan.limit + 1, plan.desc),
                    width,
                    plan.agg,
                )
            if len(points) > plan.limit:
                points = points[: plan.limit]
                going_on[metric] = points[-1].ts_us
            series[metric] = points
        return SeriesPage(
            series=series,
            interval=plan.interval,
            agg=plan.agg,
            truncated=sorted(going_on),
            next=_cursor(plan, going_on) if going_on else None,
            start_us=plan.start_us,
            end_us=plan.end_us,
        )

    async def _points(
        self, series: SeriesRange, width: int | None, agg: Aggregate | None
    ) -> list[Point]:
        if width is None:
            return await self._store.readings.points(series)
        return await self._store.readings.buckets(series, width_us=width, agg=agg or Aggregate.AVG)

    async def _planned(self, device_id: str, q: SeriesQuery) -> _Plan:
        end = q.end or datetime.now(UTC)
        start = q.start or end - DEFAULT_WINDOW
        start_us, end_us = to_micros(_utc(start)), to_micros(_utc(end))
        if start_us >= end_us:
            raise InvalidInput(
                "`from` must be before `to`",
                [FieldError(detail="not before `to`", parameter="from")],
            )
        if q.agg is not None and q.interval is None:
            fits = fitting_interval(start_us, end_us, DEFAULT_LIMIT)
            raise InvalidInput(
                "`agg` aggregates buckets and needs an `interval`: add one (an `interval` "
                f"of {fits} makes at most {DEFAULT_LIMIT:,} buckets of this range), "
                "or leave `agg` out for raw points",
                [FieldError(detail="needs an `interval`", parameter="agg")],
            )
        metrics = q.metrics or await self._store.readings.metrics(device_id)
        _check_metrics(metrics)
        return _Plan(
            device_id=device_id,
            start_us=start_us,
            end_us=end_us,
            interval=q.interval,
            agg=(q.agg or Aggregate.AVG) if q.interval is not None else None,
            desc=bool(q.desc),
            limit=_limit(q.limit),
            after=dict.fromkeys(metrics),
        )

    async def latest(self, device_id: str) -> LatestValues:
        await self._require_device(device_id)
        return await self._store.readings.latest(device_id)

    async def _require_device(self, device_id: str) -> None:
        if await self._store.devices.get(device_id) is None:
            raise NotFound(f"device {device_id!r} does not exist")


def _check_metrics(metrics: list[str]) -> None:
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


def _check_buckets(plan: _Plan, width: int) -> None:
    count = bucket_count(plan.start_us, plan.end_us, width)
    if count > MAX_POINTS:
        fits = fitting_interval(plan.start_us, plan.end_us, MAX_POINTS)
        raise InvalidInput(
            f"an `interval` of {plan.interval} makes {count:,} buckets of this range; "
            f"at most {MAX_POINTS:,} are allowed: use an `interval` of {fits} or wider, "
            "or a shorter range",
            [
                FieldError(
                    detail=f"at most {MAX_POINTS:,} buckets: {fits} or wider fits this range",
                    parameter="interval",
                )
            ],
        )


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_POINTS:
        raise InvalidInput(
            f"`limit` is from 1 to {MAX_POINTS:,} points per metric in a page",
            [FieldError(detail=f"from 1 to {MAX_POINTS:,}", parameter="limit")],
        )
    return limit


# --- the cursor --------------------------------------------------------------------------


def _cursor(plan: _Plan, going_on: dict[str, int | None]) -> str:
    """The query and where each unfinished metric goes on, as URL-safe base64 of JSON."""
    body = {
        "v": _CURSOR_VERSION,
        "dev": plan.device_id,
        "from": plan.start_us,
        "to": plan.end_us,
        "interval": plan.interval,
        "agg": plan.agg.value if plan.agg is not None else None,
        "desc": plan.desc,
        "limit": plan.limit,
        "after": going_on,
    }
    return base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode()


def _not_a_cursor() -> InvalidInput:
    return InvalidInput(
        "`cursor` is not one this API gave: pass the `next` of the previous page unchanged",
        [FieldError(detail="not a cursor of this API", parameter="cursor")],
    )


def _decoded(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _not_a_cursor() from None
    if not isinstance(body, dict) or body.get("v") != _CURSOR_VERSION:
        raise _not_a_cursor()
    return body


def _resumed(device_id: str, q: SeriesQuery) -> _Plan:
    """The plan a cursor holds, once it is checked against the query that came with it."""
    assert q.cursor is not None
    body = _decoded(q.cursor)
    try:
        interval, agg = body["interval"], body["agg"]
        plan = _Plan(
            device_id=body["dev"],
            start_us=body["from"],
            end_us=body["to"],
            interval=interval,
            agg=Aggregate(agg) if agg is not None else None,
            desc=body["desc"],
            limit=body["limit"],
            after=body["after"],
        )
    except (KeyError, ValueError, TypeError):
        raise _not_a_cursor() from None
    if not (
        all(isinstance(v, int) for v in (plan.start_us, plan.end_us, plan.limit))
        and isinstance(plan.desc, bool)
        and (interval is None or isinstance(interval, str))
        and (agg is None) == (interval is None)
        and isinstance(plan.after, dict)
        and plan.after
        and all(isinstance(ts, int) for ts in plan.after.values())
    ):
        raise _not_a_cursor()
    _check_metrics(list(plan.after))
    if plan.device_id != device_id:
        raise InvalidInput(
            "`cursor` continues a query of another device",
            [FieldError(detail="of another device", parameter="cursor")],
        )
    given: list[tuple[str, bool]] = [
        ("metric", q.metrics is not None and not set(plan.after) <= set(q.metrics)),
        ("from", q.start is not None and to_micros(_utc(q.start)) != plan.start_us),
        ("to", q.end is not None and to_micros(_utc(q.end)) != plan.end_us),
        ("interval", q.interval is not None and q.interval != plan.interval),
        ("agg", q.agg is not None and q.agg != plan.agg),
        ("order", q.desc is not None and q.desc != plan.desc),
    ]
    for name, differs in given:
        if differs:
            raise InvalidInput(
                f"`{name}` differs from the query the `cursor` continues: send the cursor "
                "alone, or with the parameters of the first page (`limit` may change)",
                [FieldError(detail="differs from the cursor's query", parameter=name)],
            )
    return replace(plan, limit=_limit(q.limit if q.limit is not None else plan.limit))


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
