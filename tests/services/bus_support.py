"""Bus messages, buses and readers shared by the bus tests (contract and Redis failures)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telehub.bus import Bus, Subscription, bus_for
from telehub.config import load_settings
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage, Event, EventType, LiveReadings, LoggedEvents
from telehub.domain.readings import Reading, StateUpdate, Telemetry
from tests.services.redis_support import (
    REDIS_URL,
    require_redis,
    unique_prefix,
)

BASE_US = 1_700_000_000_000_000
WITHIN = 10.0  # seconds for anything to arrive; a deadline, never an expectation
FLOATS = (
    0.0,
    -0.0,
    1e-300,
    -1e-300,
    5e-324,  # the smallest subnormal
    1.7976931348623157e308,  # the largest double
    -1.7976931348623157e308,
    2.0**53 + 2,
    0.1 + 0.2,
    123456789.123456789,
    -42.0,
)


@dataclass
class OpenBus:
    bus: Bus
    metrics: Metrics


Opener = Callable[..., Awaitable[OpenBus]]


def value(metric: Any) -> float:
    return float(metric.collect()[0].samples[0].value)


@contextlib.asynccontextmanager
async def buses(kind: str) -> AsyncIterator[Opener]:
    """Opens buses of ``kind`` on one fresh prefix (or another); all closed at the end."""
    if kind == "redis":
        await require_redis()
    test_prefix = unique_prefix()
    async with contextlib.AsyncExitStack() as stack:

        async def opener(*, prefix: str = test_prefix, backlog: int = 10_000) -> OpenBus:
            settings = load_settings(
                bus_url=REDIS_URL if kind == "redis" else "memory",
                bus_channel_prefix=prefix,
                bus_subscriber_backlog=backlog,
            )
            metrics = Metrics()
            bus = await stack.enter_async_context(bus_for(settings, metrics))
            return OpenBus(bus, metrics)

        yield opener


def commit(device_id: str, *values: float, start: int = 0, state: Any = None) -> LiveReadings:
    readings = tuple(
        Reading(device_id, f"m{i % 3}", BASE_US + start + i, v) for i, v in enumerate(values)
    )
    states = () if state is None else (StateUpdate(device_id, "state", BASE_US, state),)
    return LiveReadings(
        items=(Telemetry(device_id=device_id, readings=readings, state=states),),
        committed_us=BASE_US + start,
    )


def logged(*ids: int, data: dict[str, Any] | None = None) -> LoggedEvents:
    return LoggedEvents(
        tuple(
            Event(
                id=i,
                type=EventType.COMMANDS if i % 2 else EventType.PRESENCE,
                device_id=None if i % 3 == 0 else f"dev-{i}",
                at_us=BASE_US + i,
                data=data if data is not None else {"n": i},
            )
            for i in ids
        )
    )


def content(message: BusMessage) -> tuple[Any, ...]:
    """What a subscriber may rely on, whatever the backend.

    Readings: device ids, metrics, timestamps and values, and the state updates
    (the WebSocket's ``state`` frames); events: everything.
    """
    if isinstance(message, LiveReadings):
        return (
            "readings",
            message.committed_us,
            message.weight,
            [
                (
                    t.device_id,
                    [(r.device_id, r.metric, r.ts_us, r.value) for r in t.readings],
                    [(u.device_id, u.key, u.ts_us, u.value) for u in t.state],
                )
                for t in message.items
            ],
        )
    return (
        "events",
        message.weight,
        [(e.id, e.type, e.device_id, e.at_us, e.data) for e in message.events],
    )


async def receive(sub: Subscription, count: int, *, within: float = WITHIN) -> list[BusMessage]:
    """The next ``count`` messages, none lost on the way."""
    got: list[BusMessage] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            delivery = await sub.next()
            assert not delivery.lost, delivery
            got.extend(delivery.messages)
    assert len(got) == count, got
    return got


async def receive_from(
    sub: Subscription, device_id: str, count: int, *, within: float = WITHIN
) -> list[BusMessage]:
    """The next ``count`` commits of ``device_id``, skipping others (late probes)."""
    got: list[BusMessage] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            delivery = await sub.next()
            assert not delivery.lost, delivery
            got.extend(
                m
                for m in delivery.messages
                if isinstance(m, LiveReadings) and m.items[0].device_id == device_id
            )
    assert len(got) == count, got
    return got
