"""Ingestor.submit_many: a batch of submissions, each answered on its own."""

from __future__ import annotations

import asyncio

from telehub.core.ingest import IngestResult
from telehub.domain.readings import Reading, Telemetry
from telehub.errors import NotFound, Overloaded, ShuttingDown
from telehub.hub import Hub
from tests.core.ingest.support import BASE_US, batch, make_ingestor, sample, stored, writer


async def test_each_submission_gets_its_own_answer_after_one_commit(hub: Hub) -> None:
    ghost = Telemetry(device_id="ghost", readings=(Reading("ghost", "t", BASE_US, 1.0),), state=())
    items = [batch("dev-a", "t", 3), ghost, batch("dev-a", "t", 3), batch("dev-b", "u", 2)]

    answers = await hub.ingestor.submit_many(items)

    assert answers[0] == IngestResult(accepted=3, duplicates=0, state=0)
    assert isinstance(answers[1], NotFound)  # a device that does not exist
    assert answers[2] == IngestResult(accepted=0, duplicates=3, state=0)
    assert answers[3] == IngestResult(accepted=2, duplicates=0, state=0)
    assert len(await stored(hub.store.readings, "dev-a", "t")) == 3
    assert len(await stored(hub.store.readings, "dev-b", "u")) == 2


async def test_what_does_not_fit_is_refused_at_once_and_the_rest_is_committed(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, queue_readings=10, retry_after=2.5)
    items = [batch("dev-b", f"m{i}", 4) for i in range(4)]  # 16 readings, room for 10
    answering = asyncio.create_task(ingestor.submit_many(items))
    await asyncio.sleep(0)
    assert ingestor.queued == 8  # two fit; nothing waits for room

    async with writer(ingestor):
        answers = await answering

    assert [type(a) for a in answers] == [IngestResult, IngestResult, Overloaded, Overloaded]
    refused = answers[2]
    assert isinstance(refused, Overloaded)
    assert refused.retry_after == 2.5
    assert sample(metrics, "telehub_ingest_backpressure_total") == 2
    assert await stored(hub.store.readings, "dev-b", "m2") == []
    assert len(await stored(hub.store.readings, "dev-b", "m1")) == 4


async def test_after_close_every_submission_is_refused(hub: Hub) -> None:
    ingestor, _ = make_ingestor(hub)
    ingestor.close()

    answers = await ingestor.submit_many([batch("dev-c", "t", 1), batch("dev-c", "u", 1)])

    assert all(isinstance(a, ShuttingDown) for a in answers)
    assert ingestor.queued == 0


async def test_a_cancelled_batch_caller_leaves_its_data_queued_for_commit(hub: Hub) -> None:
    ingestor, _ = make_ingestor(hub)
    answering = asyncio.create_task(ingestor.submit_many([batch("dev-d", "t", 5)]))
    await asyncio.sleep(0)
    answering.cancel()

    async with writer(ingestor):
        pass

    assert len(await stored(hub.store.readings, "dev-d", "t")) == 5
