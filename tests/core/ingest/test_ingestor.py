"""The ingest pipeline: acknowledged means committed, bounded, deduplicated, drained on close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telehub.config import Settings
from telehub.core.ingest import IngestResult
from telehub.core.ports import Point
from telehub.errors import Overloaded, ShuttingDown
from telehub.hub import Hub, open_hub
from tests.core.ingest.support import (
    BASE_US,
    batch,
    enqueue,
    make_ingestor,
    register,
    sample,
    state,
    stored,
    writer,
)

# --- (a) duplicates --------------------------------------------------------------------


async def test_resent_batch_is_stored_once_and_reported_as_duplicates(hub: Hub) -> None:
    data = batch("dev-a", "temp", 5)
    assert await hub.ingestor.submit(data) == IngestResult(accepted=5, duplicates=0, state=0)
    assert await hub.ingestor.submit(data) == IngestResult(accepted=0, duplicates=5, state=0)
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 5
    assert sample(hub.metrics, "telehub_readings_accepted_total") == 5
    assert sample(hub.metrics, "telehub_readings_duplicate_total") == 5


async def test_partly_resent_batch_counts_only_the_new_readings(hub: Hub) -> None:
    await hub.ingestor.submit(batch("dev-a", "temp", 3))
    result = await hub.ingestor.submit(batch("dev-a", "temp", 5))
    assert (result.accepted, result.duplicates) == (2, 3)
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 5


async def test_concurrent_submissions_of_the_same_data_store_it_once(hub: Hub) -> None:
    data = batch("dev-a", "temp", 4)
    first, second = await asyncio.gather(hub.ingestor.submit(data), hub.ingestor.submit(data))
    assert first.accepted + second.accepted == 4
    assert first.duplicates + second.duplicates == 4
    assert len(await stored(hub.store.readings, "dev-a", "temp")) == 4


async def test_same_data_twice_in_one_commit_is_stored_once(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub)
    data = batch("dev-a", "temp", 4)
    tasks = await enqueue(ingestor, [data, data])
    async with writer(ingestor):
        first, second = await asyncio.gather(*tasks)
    assert sample(metrics, "telehub_ingest_batch_readings_count") == 1  # one shared commit
    assert (first.accepted, first.duplicates) == (4, 0)
    assert (second.accepted, second.duplicates) == (0, 4)
    assert [p.value for p in await stored(hub.store.readings, "dev-a", "temp")] == [1, 2, 3, 4]


# --- (b) backpressure ------------------------------------------------------------------


async def test_full_queue_refuses_at_once_and_commits_what_it_accepted(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, queue_readings=10, retry_after=2.5)
    accepted: list[asyncio.Task[IngestResult]] = []
    while True:
        task = asyncio.create_task(ingestor.submit(batch("dev-b", f"m{len(accepted)}", 3)))
        await asyncio.sleep(0)
        if task.done():  # refused without waiting for the (stopped) writer
            break
        accepted.append(task)
    assert len(accepted) == 3  # 9 of 10 readings queued; 3 more do not fit
    with pytest.raises(Overloaded) as caught:
        task.result()
    assert not isinstance(caught.value, ShuttingDown)
    assert caught.value.retry_after == 2.5
    assert sample(metrics, "telehub_ingest_backpressure_total") == 1
    # The refusal is about room, not a latch: one reading still fits.
    [small] = await enqueue(ingestor, [batch("dev-b", "small", 1)])
    assert not small.done()

    async with writer(ingestor):
        results = await asyncio.gather(*accepted, small)

    assert [r.accepted for r in results] == [3, 3, 3, 1]
    for i in range(3):
        assert len(await stored(hub.store.readings, "dev-b", f"m{i}")) == 3
    assert await stored(hub.store.readings, "dev-b", "m3") == []
    assert ingestor.queued == 0


async def test_queue_has_room_again_once_committed(hub: Hub) -> None:
    ingestor, _ = make_ingestor(hub, queue_readings=5)
    async with writer(ingestor):
        for i in range(4):  # 20 readings in total through a queue of 5
            result = await ingestor.submit(batch("dev-b", f"m{i}", 5))
            assert result.accepted == 5


# --- (c) shutdown ----------------------------------------------------------------------


async def test_close_drains_every_accepted_submission_then_refuses(hub: Hub) -> None:
    ingestor, _ = make_ingestor(hub, batch_readings=7)
    tasks = await enqueue(ingestor, [batch("dev-c", f"m{i}", 5) for i in range(10)])
    ingestor.close()
    [late] = await enqueue(ingestor, [batch("dev-c", "late", 1)])
    assert late.done()  # refused at once, not queued behind the others
    with pytest.raises(ShuttingDown) as caught:
        late.result()
    assert caught.value.retry_after > 0

    await ingestor.run()  # returns only once the queue is empty

    assert ingestor.queued == 0
    for i in range(10):
        assert len(await stored(hub.store.readings, "dev-c", f"m{i}")) == 5
    assert await stored(hub.store.readings, "dev-c", "late") == []
    assert [r.accepted for r in await asyncio.gather(*tasks)] == [5] * 10


async def test_leaving_open_hub_commits_everything_accepted(settings: Settings) -> None:
    async with open_hub(settings) as first:
        await register(first)
        tasks = await enqueue(first.ingestor, [batch("dev-c", f"m{i}", 50) for i in range(20)])
    assert [r.accepted for r in await asyncio.gather(*tasks)] == [50] * 20
    with pytest.raises(ShuttingDown):
        await first.ingestor.submit(batch("dev-c", "late", 1))

    async with open_hub(settings) as reopened:
        for i in range(20):
            assert len(await stored(reopened.store.readings, "dev-c", f"m{i}")) == 50


async def test_cancelled_caller_does_not_take_its_data_with_it(hub: Hub) -> None:
    ingestor, _ = make_ingestor(hub)
    [task] = await enqueue(ingestor, [batch("dev-c", "temp", 3)])
    task.cancel()  # the client went away before the commit
    async with writer(ingestor):
        pass
    assert task.cancelled()
    assert len(await stored(hub.store.readings, "dev-c", "temp")) == 3


# --- (d) batching ----------------------------------------------------------------------


async def test_commits_are_split_by_batch_size(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, batch_readings=10)
    tasks = await enqueue(ingestor, [batch("dev-d", f"m{i}", 2) for i in range(50)])
    async with writer(ingestor):
        results = await asyncio.gather(*tasks)
    assert sum(r.accepted for r in results) == 100
    assert sample(metrics, "telehub_ingest_batch_readings_count") == 10
    assert sample(metrics, "telehub_ingest_batch_readings_sum") == 100
    assert sample(metrics, "telehub_ingest_batch_readings_bucket", le="10.0") == 10


async def test_hub_batches_never_exceed_the_configured_size(make_settings: Any) -> None:
    async with open_hub(make_settings(ingest_batch_readings=10)) as hub:
        await register(hub)
        await asyncio.gather(*(hub.ingestor.submit(batch("dev-d", f"m{i}", 1)) for i in range(40)))
        commits = sample(hub.metrics, "telehub_ingest_batch_readings_count")
        assert commits is not None
        assert commits >= 4
        assert sample(hub.metrics, "telehub_ingest_batch_readings_bucket", le="10.0") == commits
        assert sample(hub.metrics, "telehub_ingest_batch_readings_sum") == 40


# --- (f) queue depth -------------------------------------------------------------------


async def test_queue_depth_counts_waiting_readings_and_returns_to_zero(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub)
    tasks = await enqueue(
        ingestor,
        [batch("dev-f", "a", 3), batch("dev-f", "b", 4), state("dev-f", BASE_US, mode="x")],
    )
    assert ingestor.queued == 8
    assert sample(metrics, "telehub_ingest_queue_readings") == 8
    async with writer(ingestor):
        await asyncio.gather(*tasks)
    assert ingestor.queued == 0
    assert sample(metrics, "telehub_ingest_queue_readings") == 0


async def test_hub_queue_depth_is_zero_after_commits(hub: Hub) -> None:
    await asyncio.gather(*(hub.ingestor.submit(batch("dev-f", f"m{i}", 10)) for i in range(10)))
    assert hub.ingestor.queued == 0
    assert sample(hub.metrics, "telehub_ingest_queue_readings") == 0


# --- (g) latest values -----------------------------------------------------------------


async def test_latest_wins_by_timestamp_not_arrival(hub: Hub) -> None:
    newer = state("dev-g", BASE_US + 2_000_000, temp=20, mode="new")
    older = state("dev-g", BASE_US + 1_000_000, temp=10, mode="old")
    assert await hub.ingestor.submit(newer) == IngestResult(accepted=1, duplicates=0, state=1)
    await hub.ingestor.submit(older)  # arrives late

    latest = await hub.telemetry.latest("dev-g")
    assert latest.readings == {"temp": Point(BASE_US + 2_000_000, 20.0)}
    assert latest.state == {"mode": (BASE_US + 2_000_000, "new")}
    # The late reading is still history, only not the latest value.
    assert [p.value for p in await stored(hub.store.readings, "dev-g", "temp")] == [10, 20]

    await hub.ingestor.submit(state("dev-g", BASE_US + 3_000_000, temp=30, mode="newest"))
    latest = await hub.telemetry.latest("dev-g")
    assert latest.readings["temp"] == Point(BASE_US + 3_000_000, 30.0)
    assert latest.state["mode"] == (BASE_US + 3_000_000, "newest")


@pytest.mark.parametrize("newest_first", [True, False])
async def test_latest_wins_by_timestamp_within_one_commit(hub: Hub, newest_first: bool) -> None:
    items = [
        state("dev-g", BASE_US + 2_000_000, temp=20, cfg={"mode": "new"}),
        state("dev-g", BASE_US + 1_000_000, temp=10, cfg={"mode": "old"}),
    ]
    ingestor, metrics = make_ingestor(hub)
    tasks = await enqueue(ingestor, items if newest_first else items[::-1])
    async with writer(ingestor):
        await asyncio.gather(*tasks)
    assert sample(metrics, "telehub_ingest_batch_readings_count") == 1

    latest = await hub.telemetry.latest("dev-g")
    assert latest.readings == {"temp": Point(BASE_US + 2_000_000, 20.0)}
    assert latest.state == {"cfg": (BASE_US + 2_000_000, {"mode": "new"})}
