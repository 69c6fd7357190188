"""Rollups: the build pass, and bucket queries that read them answering as raw ones do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from telehub.config import Settings
from telehub.core.ports import Aggregate
from telehub.domain.readings import now_us
from telehub.domain.rollups import ROLLUP_WIDTHS_US
from telehub.hub import Hub, open_hub
from telehub.storage import rollups as rollup_storage
from tests.conftest import settings_factory
from tests.storage.rollup_support import (
    DATA_START_US,
    DEVICE,
    HOUR,
    Data,
    S,
    assert_rollups_exact,
    assert_same,
    bucket_query,
    device_with,
    irregular,
    progress,
    reference,
    rows,
    spans,
)

TEN_S, ONE_H = ROLLUP_WIDTHS_US
DAY = 24 * HOUR
# About 5 hours of readings, 1 to 9 s apart.
DATA = irregular(7, start_us=DATA_START_US, count=3500)
FIRST, LAST = spans(DATA)
INTERVALS = {"10s": 10 * S, "60s": 60 * S, "2000s": 2000 * S, "1h": HOUR, "1d": DAY, "7s": 7 * S}
RANGES = {
    "day": (FIRST // DAY * DAY, FIRST // DAY * DAY + DAY),
    "hours": (FIRST // HOUR * HOUR, LAST // HOUR * HOUR + HOUR),
    "unaligned": (FIRST + 1_234_567, LAST - 777_777),
    "inside": (FIRST + HOUR + 3_300_001, FIRST + 2 * HOUR + 1_800_000_007),
}


async def build(hub: Hub) -> Hub:
    await device_with(hub, DATA)
    stats = await hub.rollups.run_pass()
    assert stats.series == 1
    assert stats.buckets > 0
    return hub


@pytest.fixture
async def built(hub: Hub) -> Hub:
    return await build(hub)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
def read_only_settings(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite: Path,
) -> Iterator[Settings]:
    directory = tmp_path_factory.mktemp("rollups")
    with settings_factory(str(request.param), directory, migrated_sqlite) as factory:
        yield factory()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def built_read_only(read_only_settings: Settings) -> AsyncIterator[Hub]:
    """``built``, made once per database for the tests that only query it: the 30 cases of
    the bucket query comparison each rebuilt the same 3500 readings and their rollups."""
    async with open_hub(read_only_settings) as hub:
        yield await build(hub)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("agg", list(Aggregate))
@pytest.mark.parametrize("interval", list(INTERVALS))
async def test_bucket_queries_equal_the_raw_answer(
    built_read_only: Hub, interval: str, agg: Aggregate
) -> None:
    """Queries only (``built_read_only`` is shared): no case can change another's answer."""
    built = built_read_only
    width = INTERVALS[interval]
    for start, end in RANGES.values():
        if (end - start) // width > 10_000:
            continue  # more buckets than a query may ask for
        for desc in (False, True):
            for limit in (10_000, 7):
                got = await bucket_query(built, start, end, interval, agg, desc=desc, limit=limit)
                want = reference(DATA, start, end, width, agg, desc=desc, limit=limit)
                assert_same(got, want, agg)


async def test_a_pass_builds_exact_rollups_up_to_now_minus_lag(built: Hub) -> None:
    done = await progress(built)
    lag_us = int(built.settings.rollup_lag_seconds * S)
    for width in ROLLUP_WIDTHS_US:
        assert LAST < done[width] <= now_us() - lag_us
        assert done[width] % width == 0
    assert await assert_rollups_exact(built, DATA) > 0


async def test_the_query_reads_rollups_where_they_are_built(built: Hub) -> None:
    # Proof that rollups answer: tamper with one 10 s row and the 60 s bucket shows it.
    bucket = (FIRST + HOUR) // TEN_S * TEN_S
    async with built.store.engine.begin() as conn:
        changed = await conn.execute(
            text("UPDATE rollups SET max = 12345 WHERE width_us = :w AND start_us = :s"),
            {"w": TEN_S, "s": bucket},
        )
    assert changed.rowcount == 1
    minute = bucket // (60 * S) * (60 * S)
    got = await bucket_query(built, minute, minute + 60 * S, "60s", Aggregate.MAX)
    assert [p.value for p in got] == [12345.0]
    # An interval no rollup width divides reads raw readings only.
    raw = await bucket_query(built, minute, minute + 70 * S, "7s", Aggregate.MAX)
    assert 12345.0 not in [p.value for p in raw]


async def test_two_passes_are_one_and_a_pass_resumes(hub: Hub) -> None:
    await device_with(hub, DATA)
    lag_us = int(hub.settings.rollup_lag_seconds * S)
    # A pass as if run in the middle of the data, then one now: the second resumes.
    middle = FIRST + 2 * HOUR + 1_234 * S + lag_us
    first = await hub.rollups.run_pass(now=middle)
    assert (await progress(hub))[TEN_S] == (middle - lag_us) // TEN_S * TEN_S
    assert (await progress(hub))[ONE_H] == (middle - lag_us) // ONE_H * ONE_H
    await assert_rollups_exact(hub, DATA)
    second = await hub.rollups.run_pass()
    assert first.buckets > 0
    assert second.buckets > 0
    count = await assert_rollups_exact(hub, DATA)
    assert first.buckets + second.buckets == count
    again = await hub.rollups.run_pass()
    assert again.buckets == 0
    assert await assert_rollups_exact(hub, DATA) == count


async def test_a_long_backlog_is_built_in_bounded_steps(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollup_storage, "STEP_ROWS", 100)
    await device_with(hub, DATA)
    stats = await hub.rollups.run_pass()
    # 3500 readings, at most ~100 (and one 10 s bucket) per step.
    assert stats.transactions >= len(DATA) // 110
    await assert_rollups_exact(hub, DATA)
    for start, end in RANGES.values():
        got = await bucket_query(hub, start, end, "60s", Aggregate.AVG)
        assert_same(
            got,
            reference(DATA, start, end, 60 * S, Aggregate.AVG, desc=False, limit=99_999),
            Aggregate.AVG,
        )


async def test_recent_data_is_not_rolled_up_yet_but_answered(hub: Hub) -> None:
    now = now_us()
    recent: Data = {now - k * 7 * S - 12_345: float(k) for k in range(60)}  # the last 7 minutes
    await device_with(hub, recent)
    await hub.rollups.run_pass()
    lag_us = int(hub.settings.rollup_lag_seconds * S)
    done = await progress(hub)
    assert done[TEN_S] <= now_us() - lag_us
    assert done[TEN_S] > min(recent)  # the older part is built
    newest = max(recent)
    assert not await rows(hub, "SELECT 1 FROM rollups WHERE start_us + width_us > :t", t=newest)
    start, end = now - HOUR, now + 60 * S
    for agg in Aggregate:
        for interval, width in (("10s", TEN_S), ("60s", 60 * S), ("1h", HOUR)):
            got = await bucket_query(hub, start, end, interval, agg)
            assert_same(got, reference(recent, start, end, width, agg, desc=False, limit=99), agg)


async def test_no_progress_means_a_raw_query(hub: Hub) -> None:
    await device_with(hub, DATA)
    start, end = RANGES["unaligned"]
    got = await bucket_query(hub, start, end, "60s", Aggregate.SUM)
    assert_same(
        got,
        reference(DATA, start, end, 60 * S, Aggregate.SUM, desc=False, limit=99_999),
        Aggregate.SUM,
    )


async def test_deleting_a_device_removes_its_rollups(built: Hub) -> None:
    other = {ts + 5: v for ts, v in list(DATA.items())[:500]}
    await device_with(built, other, device_id="roll-2")
    await built.rollups.run_pass()
    await built.devices.delete(DEVICE)
    for table in ("rollups", "rollup_progress"):
        left = await rows(built, f"SELECT DISTINCT device_id FROM {table}")
        assert left == [("roll-2",)]
    await assert_rollups_exact(built, other, "roll-2")


async def test_passes_run_in_the_background_and_are_counted(make_settings: Any) -> None:
    async with open_hub(make_settings(rollup_interval_seconds=0.05)) as hub:
        await device_with(hub, DATA)
        registry = hub.metrics.registry
        async with hub.rollups.running():
            for _ in range(200):
                if registry.get_sample_value("telehub_rollup_passes_total"):
                    break
                await asyncio.sleep(0.05)
        assert (registry.get_sample_value("telehub_rollup_buckets_written_total") or 0) > 0
        assert min((await progress(hub)).values()) > LAST
        await assert_rollups_exact(hub, DATA)
