"""Small real-time batches: PostgreSQL writes them in one statement (storage/pg_writer.py).

The ingest tests in tests/core/ingest stamp readings in 2023, which sends every
batch down the transaction path (old readings may be late for rollups); these
stamp them seconds ago, so the one-statement path is the one under test, on both
databases.
"""

from __future__ import annotations

import asyncio

import pytest

from telehub.core.ingest import IngestResult
from telehub.domain.readings import Reading, Telemetry, now_us
from telehub.errors import NotFound
from telehub.hub import Hub
from tests.core.ingest.support import enqueue, make_ingestor, register, sample, stored, writer


@pytest.fixture
async def hub(hub: Hub) -> Hub:
    """The store keeps readings of registered devices only (as in tests/core/ingest)."""
    await register(hub)
    return hub


def recent(device_id: str, metric: str, count: int, *, value: float = 1.0) -> Telemetry:
    """``count`` readings a millisecond apart, ending ten seconds ago."""
    base = now_us() - 10_000_000 - count * 1000
    readings = tuple(Reading(device_id, metric, base + i * 1000, value + i) for i in range(count))
    return Telemetry(device_id=device_id, readings=readings, state=())


async def test_a_recent_resend_is_stored_once_and_counted_as_duplicates(hub: Hub) -> None:
    data = recent("dev-a", "temp", 5)
    assert await hub.ingestor.submit(data) == IngestResult(accepted=5, duplicates=0, state=0)
    assert await hub.ingestor.submit(data) == IngestResult(accepted=0, duplicates=5, state=0)
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 5


async def test_a_partial_resend_counts_only_the_new_readings(hub: Hub) -> None:
    data = recent("dev-a", "temp", 6)
    first = Telemetry(device_id="dev-a", readings=data.readings[:2], state=())
    await hub.ingestor.submit(first)
    result = await hub.ingestor.submit(data)
    assert (result.accepted, result.duplicates) == (4, 2)
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 6


async def test_the_same_data_twice_in_one_commit_is_stored_once(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub)
    data = recent("dev-a", "temp", 4)
    tasks = await enqueue(ingestor, [data, data, recent("dev-b", "temp", 3)])
    async with writer(ingestor):
        a1, a2, b = await asyncio.gather(*tasks)
    assert sample(metrics, "telehub_ingest_batch_readings_count") == 1
    assert (a1.accepted + a2.accepted, a1.duplicates + a2.duplicates) == (4, 4)
    assert (b.accepted, b.duplicates) == (3, 0)
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 4


async def test_a_device_deleted_while_queued_loses_only_its_own_readings(hub: Hub) -> None:
    for device_id in ("doomed", "kept"):
        await hub.devices.create(device_id=device_id, name=None, attributes={})
    ingestor, metrics = make_ingestor(hub)
    doomed, kept = await enqueue(ingestor, [recent("doomed", "t", 3), recent("kept", "t", 2)])
    await hub.devices.delete("doomed")
    async with writer(ingestor):
        with pytest.raises(NotFound):
            await doomed
        assert (await kept).accepted == 2
    assert await stored(hub.store.readings, "doomed", "t") == []
    assert (await hub.store.readings.latest("doomed")).readings == {}
    assert len(await stored(hub.store.readings, "kept", "t")) == 2
    assert sample(metrics, "telehub_readings_accepted_total") == 2


async def test_latest_follows_the_newest_timestamp_not_the_last_commit(hub: Hub) -> None:
    data = recent("dev-a", "temp", 3, value=10.0)
    newest = data.readings[-1]
    await hub.ingestor.submit(data)
    older = Telemetry(
        device_id="dev-a", readings=(data.readings[0]._replace(value=99.0),), state=()
    )
    await hub.ingestor.submit(older)
    latest = (await hub.store.readings.latest("dev-a")).readings["temp"]
    assert (latest.ts_us, latest.value) == (newest.ts_us, newest.value)


async def test_last_seen_moves_with_a_recent_batch(hub: Hub) -> None:
    before = (await hub.devices.get("dev-a")).last_seen_us
    await hub.ingestor.submit(recent("dev-a", "temp", 1))
    after = (await hub.devices.get("dev-a")).last_seen_us
    assert after is not None
    assert before is None or after > before
