"""Helpers of the ingest pipeline tests: telemetry builders, an unstarted Ingestor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

from telehub.core.batching import BatchingPolicy
from telehub.core.ingest import Ingestor, IngestResult
from telehub.core.metrics import Metrics
from telehub.core.ports import Point, ReadingStore, SeriesRange
from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.hub import Hub

BASE_US = 1_700_000_000_000_000


def batch(device_id: str, metric: str, count: int, *, value: float = 1.0) -> Telemetry:
    """``count`` readings of one metric, one second apart."""
    readings = tuple(
        Reading(device_id, metric, BASE_US + i * 1_000_000, value + i) for i in range(count)
    )
    return Telemetry(device_id=device_id, readings=readings, state=())


def state(device_id: str, ts_us: int, **values: Any) -> Telemetry:
    return Telemetry(
        device_id=device_id,
        readings=tuple(
            Reading(device_id, k, ts_us, float(v))
            for k, v in values.items()
            if isinstance(v, int | float)
        ),
        state=tuple(
            StateUpdate(device_id, k, ts_us, v)
            for k, v in values.items()
            if not isinstance(v, int | float)
        ),
    )


async def stored(store: ReadingStore, device_id: str, metric: str) -> list[Point]:
    return await store.points(SeriesRange(device_id, metric, 0, 2**62, 100_000))


DEVICES = ("dev-a", "dev-b", "dev-c", "dev-d", "dev-e", "dev-f", "dev-g")


async def register(hub: Hub) -> None:
    """The store keeps readings of registered devices only."""
    for device_id in DEVICES:
        await hub.devices.create(device_id=device_id, name=None, attributes={})


def make_ingestor(
    hub: Hub,
    *,
    queue_readings: int = 100_000,
    batch_readings: int = 10_000,
    retry_after: float = 1.0,
    max_wait: float = 0.0,
    quiet: float = 0.0,
) -> tuple[Ingestor, Metrics]:
    """An ingestor on the hub's real store with its own limits; its writer is not started."""
    metrics = Metrics()
    policy = replace(
        BatchingPolicy.of(hub.settings),
        queue_readings=queue_readings,
        batch_readings=batch_readings,
        max_wait=max_wait,
        quiet=quiet,
        retry_after=retry_after,
    )
    ingestor = Ingestor(store=hub.store.readings, metrics=metrics, policy=policy)
    return ingestor, metrics


async def enqueue(
    ingestor: Ingestor, items: Iterable[Telemetry]
) -> list[asyncio.Task[IngestResult]]:
    """Submit each item in its own task and let every task reach its wait for the commit."""
    tasks = [asyncio.create_task(ingestor.submit(t)) for t in items]
    await asyncio.sleep(0)
    return tasks


@contextlib.asynccontextmanager
async def writer(ingestor: Ingestor) -> AsyncIterator[None]:
    task = asyncio.create_task(ingestor.run(), name="test-ingest-writer")
    try:
        yield
    finally:
        ingestor.close()
        await task


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)
