"""Bucket queries served from rollups where they are built, from raw readings elsewhere.

The range is cut into segments (``plan_segments``): whole rollup buckets below
each width's ``done_until_us``, raw readings for the edges and the recent
tail. Each segment yields partial aggregates per query bucket (only those the
aggregate needs: count and sum for avg), merged here. Rollups are exact, so
the answer equals the raw one: count, min and max exactly, sum and avg up to
float rounding (the additions happen in another order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telehub.core.ports import Aggregate, Point, SeriesRange
from telehub.domain.rollups import Segment, plan_segments, usable_widths

# The partial aggregates each aggregate needs, and how partials combine.
_PARTS: dict[Aggregate, tuple[str, ...]] = {
    Aggregate.AVG: ("count", "sum"),
    Aggregate.SUM: ("sum",),
    Aggregate.MIN: ("min",),
    Aggregate.MAX: ("max",),
    Aggregate.COUNT: ("count",),
}
_RAW = {"count": "count(value)", "sum": "sum(value)", "min": "min(value)", "max": "max(value)"}
_ROLLED = {
    "count": "CAST(sum(count) AS BIGINT)",
    "sum": "sum(sum)",
    "min": "min(min)",
    "max": "max(max)",
}
_COMBINE: dict[str, Callable[[Any, Any], Any]] = {
    "count": lambda a, b: a + b,
    "sum": lambda a, b: a + b,
    "min": min,
    "max": max,
}
_PROGRESS = text(
    "SELECT width_us, done_until_us FROM rollup_progress "
    "WHERE device_id = :device AND metric = :metric"
)
_W = "CAST(:width AS BIGINT)"


async def rolled_buckets(
    engine: AsyncEngine, series: SeriesRange, *, width_us: int, agg: Aggregate, sqlite: bool
) -> list[Point] | None:
    """The buckets with rollups where they help; None when they do not (query raw then)."""
    widths = usable_widths(width_us)
    if not widths:
        return None
    key = {"device": series.device_id, "metric": series.metric}
    async with engine.connect() as conn:
        done = {
            int(w): int(d)
            for w, d in await conn.execute(_PROGRESS, key)
            if int(w) in widths and int(d) > 0
        }
        segments = plan_segments(series.start_us, series.end_us, done)
        if all(s.width_us is None for s in segments):
            return None
        parts = _PARTS[agg]
        params = {**key, "width": width_us}
        if sqlite:
            rows: list[Sequence[Any]] = []
            for segment in segments:
                rows += await _sqlite_segment(conn, segment, parts, params)
        else:
            rows = await _pg_segments(conn, segments, parts, params)
    return _finish(_merge(rows, parts), agg, series)


def _source(segment: Segment, index: int) -> tuple[str, str, dict[str, int], dict[str, str]]:
    """The segment's time column, FROM ... WHERE (series and range), parameters, expressions."""
    lo, hi = f"lo{index}", f"hi{index}"
    bounds = {lo: segment.lo_us, hi: segment.hi_us}
    if segment.width_us is None:
        where = "FROM readings WHERE device_id = :device AND metric = :metric"
        return "ts", where, bounds, _RAW
    source = f"rw{index}"
    where = f"FROM rollups WHERE device_id = :device AND metric = :metric AND width_us = :{source}"
    return "start_us", where, {**bounds, source: segment.width_us}, _ROLLED


async def _pg_segments(
    conn: AsyncConnection, segments: list[Segment], parts: tuple[str, ...], params: dict[str, Any]
) -> list[Sequence[Any]]:
    # One statement: a GROUP BY per segment, UNION ALL.
    selects = []
    params = dict(params)
    for index, segment in enumerate(segments):
        ts, where, bounds, expr = _source(segment, index)
        params.update(bounds)
        columns = ", ".join(expr[p] for p in parts)
        selects.append(
            f"SELECT {ts} / {_W} * {_W} AS bucket, {columns} {where} "
            f"AND {ts} >= :lo{index} AND {ts} < :hi{index} GROUP BY 1"
        )
    return list((await conn.execute(text(" UNION ALL ".join(selects)), params)).all())


async def _sqlite_segment(
    conn: AsyncConnection, segment: Segment, parts: tuple[str, ...], params: dict[str, Any]
) -> list[Sequence[Any]]:
    # SQLite's GROUP BY over an expression sorts every row in a temporary B-tree;
    # one primary-key range scan per bucket (and per partial) is several times faster.
    ts, where, bounds, expr = _source(segment, 0)
    in_bucket = f"{where} AND {ts} >= max(k, :lo0) AND {ts} < min(k + :width, :hi0)"
    columns = ", ".join(f"(SELECT {expr[p]} {in_bucket})" for p in parts)
    sql = text(
        "WITH RECURSIVE b(k) AS (SELECT :first UNION ALL "
        "SELECT k + :width FROM b WHERE k + :width < :hi0) "
        f"SELECT k, {columns} FROM b"
    )
    first = segment.lo_us // params["width"] * params["width"]
    return list((await conn.execute(sql, {**params, **bounds, "first": first})).all())


def _merge(rows: list[Sequence[Any]], parts: tuple[str, ...]) -> dict[int, list[Any]]:
    """Partials per bucket combined; buckets without readings left out."""
    combine = [_COMBINE[p] for p in parts]
    counted = parts[0] == "count"
    merged: dict[int, list[Any]] = {}
    for row in rows:
        values = row[1:]
        # An empty bucket (SQLite lists every bucket): count 0, or NULL partials.
        if values[0] is None or (counted and values[0] == 0):
            continue
        bucket = int(row[0])
        old = merged.get(bucket)
        if old is None:
            merged[bucket] = list(values)
        else:
            merged[bucket] = [f(a, b) for f, a, b in zip(combine, old, values, strict=True)]
    return merged


def _finish(merged: dict[int, list[Any]], agg: Aggregate, series: SeriesRange) -> list[Point]:
    buckets = sorted(merged, reverse=series.desc)[: series.limit]
    if agg is Aggregate.AVG:
        return [Point(k, merged[k][1] / merged[k][0]) for k in buckets]
    return [Point(k, float(merged[k][0])) for k in buckets]
