"""SQLite writes small batches on the event loop, but never waits there for the write lock."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from telehub.domain.readings import Reading, Telemetry, now_us
from telehub.hub import Hub
from tests.core.ingest.support import register, stored


@pytest.fixture
async def hub(hub: Hub) -> Hub:
    """The store keeps readings of registered devices only (as in tests/core/ingest)."""
    await register(hub)
    return hub


@pytest.fixture
def backend() -> str:
    """SQLite's writer only (this overrides the both-databases parametrisation)."""
    return "sqlite"


def db_path(hub: Hub) -> Path:
    return Path(hub.settings.database_url.split("///", 1)[1])


def one(device_id: str, value: float) -> Telemetry:
    return Telemetry(
        device_id=device_id, readings=(Reading(device_id, "t", now_us(), value),), state=()
    )


async def test_a_batch_waits_off_the_loop_while_another_connection_holds_the_lock(
    hub: Hub,
) -> None:
    other = sqlite3.connect(db_path(hub), isolation_level=None)
    other.execute("PRAGMA busy_timeout=10000")
    await hub.ingestor.submit(one("dev-a", 0.0))  # the inline connection exists now
    inline = hub.store.readings._writer._inline  # type: ignore[attr-defined]
    # It must never wait for the lock: that wait would freeze the event loop.
    assert inline.execute("PRAGMA busy_timeout").fetchone() == (0,)
    other.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.create_task(hub.ingestor.submit(one("dev-a", 1.0)))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the batch waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    result = await asyncio.wait_for(pending, 20)
    assert result.accepted == 1
    assert [p.value for p in await stored(hub.store.readings, "dev-a", "t")] == [0.0, 1.0]


async def test_small_batches_keep_committing_after_the_lock_is_released(hub: Hub) -> None:
    other = sqlite3.connect(db_path(hub), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    pending = asyncio.create_task(hub.ingestor.submit(one("dev-b", 1.0)))
    await asyncio.sleep(0.05)
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(pending, 20)
    results = [await hub.ingestor.submit(one("dev-b", float(v))) for v in range(2, 6)]
    assert [r.accepted for r in results] == [1, 1, 1, 1]
    assert len(await stored(hub.store.readings, "dev-b", "t")) == 5
