"""Rollup tests' helpers: irregular data, a pure-Python bucket aggregation, table dumps."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from telehub.core.ports import Aggregate, Point
from telehub.core.telemetry import SeriesQuery
from telehub.domain.readings import Reading, Telemetry, from_micros
from telehub.domain.rollups import ROLLUP_WIDTHS_US
from telehub.hub import Hub
from tests.core.service_support import BASE_US, WRITER

S = 1_000_000
HOUR = 3600 * S
# Not on any bucket bound: 1234.567891 s after a whole minute.
DATA_START_US = BASE_US + 1_234_567_891
DEVICE = "roll-1"
METRIC = "temp"

Data = dict[int, float]  # ts_us -> value


def irregular(seed: int, *, start_us: int, count: int, max_step_s: float = 9.0) -> Data:
    """Readings at irregular times (µs jitter, steps up to ``max_step_s``), arbitrary values."""
    rnd = random.Random(seed)
    out: Data = {}
    ts = start_us
    for _ in range(count):
        ts += rnd.randint(1, int(max_step_s * S))
        out[ts] = round(rnd.uniform(-50, 50), rnd.randint(0, 6))
    return out


def telemetry(points: Data, *, device_id: str = DEVICE, metric: str = METRIC) -> Telemetry:
    return Telemetry(
        device_id=device_id,
        readings=tuple(Reading(device_id, metric, ts, v) for ts, v in points.items()),
        state=(),
    )


async def ingest(hub: Hub, points: Data, *, device_id: str = DEVICE) -> None:
    items = list(points.items())
    for start in range(0, len(items), 5000):
        chunk = dict(items[start : start + 5000])
        await hub.ingest.submit(
            WRITER, telemetry(chunk, device_id=device_id), transport="test", payload=b""
        )


async def device_with(hub: Hub, points: Data, *, device_id: str = DEVICE) -> str:
    await hub.devices.create(device_id=device_id, name=None, attributes={})
    await ingest(hub, points, device_id=device_id)
    return device_id


def reference(
    data: Data, start_us: int, end_us: int, width_us: int, agg: Aggregate, *, desc: bool, limit: int
) -> list[Point]:
    """What a bucket query must answer, computed from the readings themselves."""
    groups: dict[int, list[float]] = {}
    for ts, v in data.items():
        if start_us <= ts < end_us:
            groups.setdefault(ts // width_us * width_us, []).append(v)
    out = []
    for k in sorted(groups, reverse=desc)[:limit]:
        vs = groups[k]
        value = {
            Aggregate.AVG: math.fsum(vs) / len(vs),
            Aggregate.SUM: math.fsum(vs),
            Aggregate.MIN: min(vs),
            Aggregate.MAX: max(vs),
            Aggregate.COUNT: float(len(vs)),
        }[agg]
        out.append(Point(k, value))
    return out


def assert_same(got: list[Point], want: list[Point], agg: Aggregate) -> None:
    """Bucket starts exact; count, min and max exact; avg and sum up to float rounding."""
    assert [p.ts_us for p in got] == [p.ts_us for p in want]
    for g, w in zip(got, want, strict=True):
        if agg in (Aggregate.AVG, Aggregate.SUM):
            assert math.isclose(g.value, w.value, rel_tol=1e-9, abs_tol=1e-9), (g, w)
        else:
            assert g.value == w.value, (g, w)


async def bucket_query(
    hub: Hub,
    start_us: int,
    end_us: int,
    interval: str,
    agg: Aggregate,
    *,
    desc: bool = False,
    limit: int = 10_000,
    device_id: str = DEVICE,
) -> list[Point]:
    q = SeriesQuery(
        metrics=[METRIC],
        start=from_micros(start_us),
        end=from_micros(end_us),
        interval=interval,
        agg=agg,
        limit=limit,
        desc=desc,
    )
    return (await hub.telemetry.query(device_id, q))[METRIC]


async def rows(hub: Hub, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with hub.store.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def progress(hub: Hub, device_id: str = DEVICE) -> dict[int, int]:
    found = await rows(
        hub,
        "SELECT width_us, done_until_us FROM rollup_progress WHERE device_id = :d",
        d=device_id,
    )
    return {int(w): int(d) for w, d in found}


async def stored(hub: Hub, device_id: str = DEVICE) -> Data:
    """The readings as the database holds them (a duplicate keeps its first value)."""
    found = await rows(
        hub,
        "SELECT ts, value FROM readings WHERE device_id = :d AND metric = :m",
        d=device_id,
        m=METRIC,
    )
    return {int(ts): float(v) for ts, v in found}


async def assert_rollups_exact(hub: Hub, data: Data, device_id: str = DEVICE) -> int:
    """Every rollup row equals the readings' aggregate, and every built bucket has its row.

    Returns how many rows there are."""
    done = await progress(hub, device_id)
    found = await rows(
        hub,
        "SELECT width_us, start_us, count, sum, min, max FROM rollups WHERE device_id = :d",
        d=device_id,
    )
    have = {
        (int(w), int(s)): (int(c), float(t), float(lo), float(hi)) for w, s, c, t, lo, hi in found
    }
    want: dict[tuple[int, int], list[float]] = {}
    for width in ROLLUP_WIDTHS_US:
        for ts, v in data.items():
            if ts < done.get(width, 0):
                want.setdefault((width, ts // width * width), []).append(v)
    assert sorted(have) == sorted(want)
    for key, vs in want.items():
        count, total, lo, hi = have[key]
        assert (count, lo, hi) == (len(vs), min(vs), max(vs)), key
        assert math.isclose(total, math.fsum(vs), rel_tol=1e-9, abs_tol=1e-9), key
    return len(have)


def spans(data: Iterable[int]) -> tuple[int, int]:
    ts = sorted(data)
    return ts[0], ts[-1]
