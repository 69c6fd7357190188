"""Batches, counts and a held writer for the gRPC ingest tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest

from telehub.core.ports import Aggregate
from telehub.core.telemetry import SeriesQuery
from telehub.domain.readings import Telemetry
from telehub.hub import Hub
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import T0


def readings_batch(
    device_id: str, count: int, *, start: int = 0, metric: str = "temperature"
) -> telemetry_pb2.ReadingBatch:
    """``count`` readings one second apart from T0 + ``start`` s, valued by their second."""
    batch = telemetry_pb2.ReadingBatch(device_id=device_id)
    for second in range(start, start + count):
        reading = batch.readings.add(metric=metric, value=float(second))
        reading.ts.FromSeconds(int(T0.timestamp()) + second)
    return batch


async def stored_count(hub: Hub, device_id: str = "dev-1", metric: str = "temperature") -> int:
    """Readings stored for one series (over all time), counted by the database."""
    query = SeriesQuery(
        metrics=[metric],
        start=T0 - timedelta(days=1),
        end=T0 + timedelta(days=30),
        interval="31d",
        agg=Aggregate.COUNT,
        limit=10,
        desc=False,
    )
    series = await hub.telemetry.query(device_id, query)
    return int(sum(p.value for p in series.get(metric, [])))


@dataclass
class HeldWriter:
    writing: asyncio.Event
    release: asyncio.Event


@contextlib.asynccontextmanager
async def held_writer(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HeldWriter]:
    """Commits wait until ``release`` is set (the real store still writes them afterwards)."""
    held = HeldWriter(asyncio.Event(), asyncio.Event())
    write = hub.store.readings.write

    async def holding(items: Sequence[Telemetry], *, received_us: int) -> list[int | None]:
        held.writing.set()
        await held.release.wait()
        return await write(items, received_us=received_us)

    monkeypatch.setattr(hub.store.readings, "write", holding)
    try:
        yield held
    finally:
        held.release.set()
