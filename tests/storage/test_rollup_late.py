"""Late readings: committed below built rollups, they are merged in the same transaction."""

from __future__ import annotations

import pytest

from telehub.core.ports import Aggregate
from telehub.domain.readings import now_us
from telehub.hub import Hub
from tests.core.service_support import WRITER
from tests.storage.rollup_support import (
    DATA_START_US,
    HOUR,
    Data,
    S,
    assert_rollups_exact,
    assert_same,
    bucket_query,
    device_with,
    ingest,
    irregular,
    progress,
    reference,
    rows,
    stored,
    telemetry,
)

DATA = irregular(11, start_us=DATA_START_US, count=2000)
INTERVALS = {"10s": 10 * S, "60s": 60 * S, "2000s": 2000 * S, "1h": HOUR, "7s": 7 * S}


def late_count(hub: Hub) -> float:
    return hub.metrics.registry.get_sample_value("telehub_rollup_late_readings_total") or 0.0


async def assert_queries_exact(hub: Hub, data: Data) -> None:
    first, last = min(data), max(data)
    for start, end in ((first - 3 * S, last + 3 * S), (first + 1_234_567, last - 999_999)):
        for interval, width in INTERVALS.items():
            for agg in Aggregate:
                got = await bucket_query(hub, start, end, interval, agg)
                want = reference(data, start, end, width, agg, desc=False, limit=10_000)
                assert_same(got, want, agg)


@pytest.fixture
async def built(hub: Hub) -> Hub:
    await device_with(hub, DATA)
    await hub.rollups.run_pass()
    return hub


async def test_new_late_readings_are_merged_and_duplicates_are_not(built: Hub) -> None:
    old = sorted(DATA)
    new: Data = {ts + 1: -1000.0 - i for i, ts in enumerate(old[::7])}  # new keys, extremes
    resent: Data = {ts: 5000.0 for ts in old[3::11]}  # stored keys: not stored again
    await ingest(built, new | resent)
    assert late_count(built) == len(new)
    data = await stored(built)
    assert data == DATA | new
    await assert_rollups_exact(built, data)
    await assert_queries_exact(built, data)
    # The same batch again is all duplicates: nothing moves.
    await ingest(built, new | resent)
    assert late_count(built) == len(new)
    await assert_rollups_exact(built, data)


async def test_late_readings_in_one_commit_with_their_duplicates(built: Hub) -> None:
    # Two submissions in one batch carrying the same new key: stored once, counted once.
    ts = sorted(DATA)[100] + 3
    first, second = telemetry({ts: 1.5}), telemetry({ts: 99.0})
    results = await built.ingestor.submit_many([first, second])
    assert sum(r.accepted for r in results if not isinstance(r, Exception)) == 1
    data = await stored(built)
    assert data[ts] in (1.5, 99.0)
    await assert_rollups_exact(built, data)


async def test_late_readings_into_buckets_that_had_none(built: Hub) -> None:
    # Before the first reading and in gaps: new rollup rows, at both widths.
    first = min(DATA)
    gaps: Data = {first - 5 * HOUR - 17: 3.25, first - 2 * S: -7.0, max(DATA) + 1: 0.0}
    await ingest(built, gaps)
    assert late_count(built) == 3
    data = DATA | gaps
    await assert_rollups_exact(built, data)
    await assert_queries_exact(built, data)


async def test_recent_readings_take_no_late_path(built: Hub) -> None:
    lag_us = int(built.settings.rollup_lag_seconds * S)
    now = now_us()
    recent: Data = {now - lag_us // 2 + 5 * S: 1.0, now: 2.0}
    await ingest(built, recent)
    assert late_count(built) == 0
    # Not rolled up until a pass runs past them, but answered (raw).
    await built.rollups.run_pass()
    assert max((await progress(built)).values()) <= now_us() - lag_us
    got = await bucket_query(built, now - HOUR, now + S, "60s", Aggregate.COUNT)
    assert sum(p.value for p in got) == 2


async def test_a_series_without_rollups_merges_nothing(built: Hub) -> None:
    # Another metric of the device: no progress rows yet, so nothing to merge into.
    other = {ts: 1.0 for ts in sorted(DATA)[:50]}
    await built.ingest.submit(WRITER, telemetry(other, metric="hum"), transport="test", payload=b"")
    assert late_count(built) == 0
    assert await rows(built, "SELECT 1 FROM rollups WHERE metric = 'hum'") == []
    await built.rollups.run_pass()
    assert await rows(built, "SELECT 1 FROM rollups WHERE metric = 'hum'") != []
    await assert_rollups_exact(built, DATA)  # the first metric is untouched


async def test_late_readings_of_several_series_in_one_batch(built: Hub) -> None:
    await device_with(built, {ts + 3: 2.0 for ts in list(DATA)[:300]}, device_id="roll-2")
    await built.rollups.run_pass()
    one: Data = {ts + 2: 4.0 for ts in list(DATA)[::50]}
    two: Data = {ts + 4: -4.0 for ts in list(DATA)[10:300:30]}
    results = await built.ingestor.submit_many([telemetry(one), telemetry(two, device_id="roll-2")])
    assert [r.accepted for r in results if not isinstance(r, Exception)] == [len(one), len(two)]
    assert late_count(built) == len(one) + len(two)
    await assert_rollups_exact(built, await stored(built))
    await assert_rollups_exact(built, await stored(built, "roll-2"), "roll-2")
