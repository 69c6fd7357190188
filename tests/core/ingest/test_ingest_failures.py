"""The ingest pipeline when storage fails: refused rows, lost sessions, deleted devices."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from telehub.core.ingest import IngestResult
from telehub.errors import NotFound, StorageUnavailable
from telehub.hub import Hub
from tests.core.ingest.support import (
    BASE_US,
    batch,
    enqueue,
    make_ingestor,
    sample,
    state,
    stored,
    writer,
)

# --- (e) storage failure ---------------------------------------------------------------


@pytest.mark.allow_error_logs
async def test_failed_commit_raises_storage_unavailable_and_recovers(hub: Hub) -> None:
    await hub.ingestor.submit(batch("dev-e", "before", 1))
    async with hub.store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE readings RENAME TO readings_away"))

    results = await asyncio.gather(
        hub.ingestor.submit(batch("dev-e", "lost1", 2)),
        hub.ingestor.submit(batch("dev-e", "lost2", 2)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [StorageUnavailable, StorageUnavailable]
    failures = sample(hub.metrics, "telehub_ingest_commit_failures_total")
    assert failures is not None
    assert failures >= 4  # retried before giving up
    assert hub.ingestor.queued == 0

    async with hub.store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE readings_away RENAME TO readings"))
    # The writer survived the outage: the next submission is committed.
    assert (await hub.ingestor.submit(batch("dev-e", "after", 2))).accepted == 2
    assert len(await stored(hub.store.readings, "dev-e", "before")) == 1
    assert await stored(hub.store.readings, "dev-e", "lost1") == []
    assert await stored(hub.store.readings, "dev-e", "lost2") == []


@pytest.mark.allow_error_logs
async def test_a_submission_the_database_refuses_does_not_sink_its_batch(hub: Hub) -> None:
    # Validation normally stops both; here they reach the database, which refuses
    # the row (SQLite stores NaN as NULL in a NOT NULL column; PostgreSQL checks varchar(64)).
    poison = batch("dev-f", "x" * 65, 1, value=float("nan"))
    ingestor, _ = make_ingestor(hub)
    good = [batch("dev-e", f"m{i}", 2) for i in range(5)]
    tasks = await enqueue(ingestor, [*good[:2], poison, *good[2:]])
    async with writer(ingestor):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results.pop(2), StorageUnavailable)
    assert results == [IngestResult(accepted=2, duplicates=0, state=0)] * 5
    for i in range(5):
        assert len(await stored(hub.store.readings, "dev-e", f"m{i}")) == 2
    assert ingestor.queued == 0


async def test_device_deleted_while_queued_gets_not_found_and_nothing_stored(hub: Hub) -> None:
    """A delete that lands between acceptance and commit leaves no orphan readings."""
    for device_id in ("doomed", "kept"):
        await hub.devices.create(device_id=device_id, name=None, attributes={})
    ingestor, metrics = make_ingestor(hub)
    doomed, kept = await enqueue(
        ingestor,
        [
            state("doomed", BASE_US, t=1.0, mode="on"),
            state("kept", BASE_US, t=2.0, mode="off"),
        ],
    )
    await hub.devices.delete("doomed")
    async with writer(ingestor):
        with pytest.raises(NotFound):
            await doomed
        assert (await kept).accepted == 1
    assert await stored(hub.store.readings, "doomed", "t") == []
    assert (await hub.store.readings.latest("doomed")).state == {}
    assert [p.value for p in await stored(hub.store.readings, "kept", "t")] == [2.0]
    assert sample(metrics, "telehub_readings_accepted_total") == 1
