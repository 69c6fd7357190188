"""On PostgreSQL, build passes racing writers that commit late readings end exact.

SQLite serialises every writer, so there the question does not arise; on
PostgreSQL the builder's ``FOR UPDATE`` and the writer's ``FOR SHARE`` on the
progress rows are what keep each late reading counted once (storage/rollups.py).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from telehub.core.ports import Aggregate
from telehub.hub import Hub
from telehub.storage import rollups as rollup_storage
from tests.storage.rollup_support import (
    DATA_START_US,
    HOUR,
    Data,
    S,
    assert_rollups_exact,
    assert_same,
    bucket_query,
    device_with,
    irregular,
    reference,
    stored,
    telemetry,
)

ROUNDS = 40


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.services)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_build_passes_racing_late_writes_stay_exact(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short steps, so a pass is many transactions for the writes to fall between.
    monkeypatch.setattr(rollup_storage, "STEP_ROWS", 40)
    data = irregular(5, start_us=DATA_START_US, count=3000)
    await device_with(hub, data)
    await device_with(hub, {ts + 1: 1.0 for ts in list(data)[::3]}, device_id="roll-2")
    lag_us = int(hub.settings.rollup_lag_seconds * S)
    first, last = min(data), max(data)
    rnd = random.Random(42)
    keys = sorted(data)

    async def write(batches: list[Data]) -> None:
        for batch in batches:
            # Each batch: the same new timestamps on both devices, one commit.
            items = [telemetry(batch), telemetry(batch, device_id="roll-2")]
            for result in await hub.ingestor.submit_many(items):
                assert not isinstance(result, Exception), result

    for round_ in range(ROUNDS):
        # This round's pass builds up to the frontier; the writes land all around it.
        frontier = first + (last - first) * (round_ + 1) // ROUNDS
        batches: list[Data] = []
        for _ in range(8):
            batch = {
                frontier + rnd.randint(-20 * 60 * S, 5 * 60 * S): rnd.uniform(-99, 99)
                for _ in range(12)
            }
            batch |= {ts: 777.0 for ts in rnd.sample(keys, 3)}  # resends: never counted
            batches.append(batch)
        await asyncio.gather(hub.rollups.run_pass(now=frontier + lag_us), write(batches))

    await hub.rollups.run_pass()
    merged = hub.metrics.registry.get_sample_value("telehub_rollup_late_readings_total")
    assert merged
    for device_id in ("roll-1", "roll-2"):
        await assert_rollups_exact(hub, await stored(hub, device_id), device_id)
    final = await stored(hub)
    assert 777.0 not in final.values()  # roll-1's resends were all duplicates
    for interval, width in (("10s", 10 * S), ("2000s", 2000 * S), ("1h", HOUR)):
        for agg in (Aggregate.COUNT, Aggregate.AVG, Aggregate.MAX):
            got = await bucket_query(hub, first - HOUR, last + HOUR, interval, agg)
            want = reference(final, first - HOUR, last + HOUR, width, agg, desc=False, limit=9999)
            assert_same(got, want, agg)
