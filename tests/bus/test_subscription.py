"""One subscriber's bounded backlog, and the local fan-out every bus shares.

Runs on the in-memory bus: what is tested here (drop-oldest by weight, the
dropped count, the interrupt flag, channels, leaving the bus) is the same code
for every backend; tests/services/test_bus_contract.py checks Redis behaves alike.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telehub.bus import Channel, Delivery, Subscription
from telehub.bus.memory import MemoryBus
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage, Event, EventType, LiveReadings, LoggedEvents
from telehub.domain.readings import Reading, Telemetry
from telehub.hub import Hub

BASE_US = 1_700_000_000_000_000


def readings(count: int, *, device_id: str = "dev-1", start: int = 0) -> LiveReadings:
    """One commit of ``count`` readings (its weight), ts ``start`` … ``start + count - 1``."""
    items = tuple(
        Reading(device_id, "t", BASE_US + start + i, float(start + i)) for i in range(count)
    )
    return LiveReadings(
        items=(Telemetry(device_id=device_id, readings=items, state=()),), committed_us=BASE_US
    )


def events(*ids: int) -> LoggedEvents:
    return LoggedEvents(
        tuple(
            Event(id=i, type=EventType.COMMANDS, device_id="dev-1", at_us=BASE_US, data={"n": i})
            for i in ids
        )
    )


def value(metric: Any) -> float:
    """The current value of a prometheus Counter or Gauge (also one set by a function)."""
    return float(metric.collect()[0].samples[0].value)


def subscription(
    limit: int, *, channels: frozenset[Channel] | None = None
) -> tuple[Subscription, list[int]]:
    """A subscription on no bus, and the list its drop counts are reported to."""
    dropped: list[int] = []
    sub = Subscription(
        channels=channels or frozenset(Channel),
        limit=limit,
        on_drop=dropped.append,
        on_close=lambda _: None,
    )
    return sub, dropped


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def bus(metrics: Metrics) -> MemoryBus:
    return MemoryBus(metrics=metrics, backlog=1000)


def test_take_is_none_when_nothing_waits() -> None:
    sub, _ = subscription(10)
    assert sub.take() is None
    sub.offer(readings(1))
    assert sub.take() is not None
    assert sub.take() is None


def test_everything_waiting_comes_in_one_delivery_oldest_first() -> None:
    sub, _ = subscription(100)
    sent: list[BusMessage] = [readings(2), events(1, 2), readings(3, start=2)]
    for message in sent:
        sub.offer(message)
    assert sub.backlog == 7
    delivery = sub.take()
    assert delivery == Delivery(sent, dropped=0, interrupted=False)
    assert not delivery.lost
    assert delivery.messages[0] is sent[0]  # the very objects: no copy, no encoding
    assert sub.backlog == 0


def test_overflow_drops_the_oldest_by_weight_and_says_so_once() -> None:
    sub, dropped = subscription(10)
    first, second, third = readings(4), readings(4, start=4), readings(4, start=8)
    for message in (first, second, third):
        sub.offer(message)
    # 12 readings over a limit of 10: the oldest message (4 readings) went.
    assert sub.backlog == 8
    assert dropped == [4]
    delivery = sub.take()
    assert delivery == Delivery([second, third], dropped=4, interrupted=False)
    assert delivery.lost

    fourth = readings(1, start=12)
    sub.offer(fourth)
    assert sub.take() == Delivery([fourth], dropped=0, interrupted=False)


def test_drops_accumulate_until_the_next_delivery() -> None:
    sub, dropped = subscription(3)
    for n in range(10):
        sub.offer(events(n))
    delivery = sub.take()
    assert delivery is not None
    assert [m.events[0].id for m in delivery.messages] == [7, 8, 9]  # type: ignore[union-attr]
    assert delivery.dropped == 7
    assert sum(dropped) == 7


def test_an_event_message_weighs_its_number_of_events() -> None:
    sub, _ = subscription(5)
    sub.offer(events(1, 2, 3))
    sub.offer(events(4, 5, 6))
    assert sub.backlog == 3
    delivery = sub.take()
    assert delivery is not None
    assert delivery.dropped == 3
    assert delivery.messages == [events(4, 5, 6)]


def test_the_newest_message_stays_even_when_heavier_than_the_limit() -> None:
    sub, _ = subscription(5)
    huge = readings(50)
    sub.offer(huge)
    assert sub.take() == Delivery([huge], dropped=0, interrupted=False)

    sub.offer(readings(3))
    sub.offer(huge)
    assert sub.backlog == 50
    assert sub.take() == Delivery([huge], dropped=3, interrupted=False)

    # And a lighter one after it pushes the heavy one out.
    sub.offer(huge)
    light = readings(2, start=50)
    sub.offer(light)
    assert sub.take() == Delivery([light], dropped=50, interrupted=False)


def test_interrupt_is_reported_once() -> None:
    sub, _ = subscription(10)
    sub.interrupt()
    delivery = sub.take()
    assert delivery == Delivery([], dropped=0, interrupted=True)
    assert delivery.lost
    assert sub.take() is None

    message = readings(1)
    sub.offer(message)
    sub.interrupt()
    assert sub.take() == Delivery([message], dropped=0, interrupted=True)
    sub.offer(message)
    assert sub.take() == Delivery([message], dropped=0, interrupted=False)


async def test_next_waits_until_something_arrives() -> None:
    sub, _ = subscription(10)
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    message = readings(1)
    sub.offer(message)
    async with asyncio.timeout(5):
        assert await waiting == Delivery([message])


async def test_next_returns_an_interruption() -> None:
    sub, _ = subscription(10)
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    sub.interrupt()
    async with asyncio.timeout(5):
        assert await waiting == Delivery([], interrupted=True)


async def test_wait_returns_at_once_when_something_waits() -> None:
    sub, _ = subscription(10)
    sub.offer(readings(1))
    async with asyncio.timeout(5):
        await sub.wait()
    sub.take()
    waiting = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    sub.interrupt()
    async with asyncio.timeout(5):
        await waiting


async def test_a_subscription_is_an_async_iterator(bus: MemoryBus) -> None:
    sent = [readings(1), readings(1, start=1)]
    got: list[Delivery] = []
    async with bus.subscribe([Channel.READINGS]) as sub:
        for message in sent:
            bus.publish(message)
        async with asyncio.timeout(5):
            async for delivery in sub:
                got.append(delivery)
                break
    assert got == [Delivery(sent)]


async def test_close_and_exit_leave_the_bus(bus: MemoryBus, metrics: Metrics) -> None:
    assert value(metrics.bus_subscribers) == 0
    first = bus.subscribe([Channel.READINGS])
    async with bus.subscribe([Channel.READINGS, Channel.EVENTS]) as second:
        assert value(metrics.bus_subscribers) == 2
        first.close()
        first.close()  # twice is harmless
        assert value(metrics.bus_subscribers) == 1
        bus.publish(readings(1))
        assert first.take() is None
        assert second.take() is not None
    assert value(metrics.bus_subscribers) == 0
    bus.publish(readings(5))
    bus.publish(events(1))
    assert second.take() is None
    assert value(metrics.bus_dropped) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_hubs_subscriber_gauge(hub: Hub) -> None:
    before = value(hub.metrics.bus_subscribers)
    sub = hub.bus.subscribe([Channel.READINGS])
    assert value(hub.metrics.bus_subscribers) == before + 1
    sub.close()
    assert value(hub.metrics.bus_subscribers) == before


def test_a_subscriber_gets_only_its_channels(bus: MemoryBus, metrics: Metrics) -> None:
    only_readings = bus.subscribe([Channel.READINGS])
    only_events = bus.subscribe([Channel.EVENTS])
    both = bus.subscribe([Channel.READINGS, Channel.EVENTS])
    sent: list[BusMessage] = [readings(1), events(1), readings(2, start=1), events(2, 3)]
    for message in sent:
        bus.publish(message)
    assert only_readings.take() == Delivery([sent[0], sent[2]])
    assert only_events.take() == Delivery([sent[1], sent[3]])
    assert both.take() == Delivery(sent)
    assert value(metrics.bus_published) == 4


def test_the_default_backlog_is_the_buses_and_can_be_overridden(bus: MemoryBus) -> None:
    default = bus.subscribe([Channel.READINGS])
    small = bus.subscribe([Channel.READINGS], backlog=10)
    bus.publish(readings(1500))
    bus.publish(readings(900, start=1500))
    first = default.take()
    assert first is not None
    assert first.dropped == 1500  # 2400 over the bus's 1000: the oldest message went
    second = small.take()
    assert second is not None
    assert second.dropped == 1500
    assert second.messages == first.messages


async def test_a_stalled_subscriber_harms_nobody(bus: MemoryBus, metrics: Metrics) -> None:
    """100,000 readings: the fast reader gets them all; the stalled one keeps only its limit."""
    per_message, messages = 10, 10_000
    stalled = bus.subscribe([Channel.READINGS], backlog=100)
    fast = bus.subscribe([Channel.READINGS], backlog=10 * per_message)
    got: list[float] = []
    lost = 0

    async def read_fast() -> None:
        nonlocal lost
        while len(got) < per_message * messages:
            delivery = await fast.next()
            lost += delivery.dropped
            for message in delivery.messages:
                assert isinstance(message, LiveReadings)
                got.extend(r.value for t in message.items for r in t.readings)

    async with asyncio.timeout(60), asyncio.TaskGroup() as tasks:
        tasks.create_task(read_fast())
        for n in range(messages):
            bus.publish(readings(per_message, start=n * per_message))  # never waits
            await asyncio.sleep(0)  # the fast reader's turn

    assert lost == 0
    assert got == [float(i) for i in range(per_message * messages)]
    delivery = stalled.take()
    assert delivery is not None
    assert stalled.backlog == 0
    kept = sum(m.weight for m in delivery.messages)
    assert kept <= 100
    assert delivery.dropped == per_message * messages - kept
    last = delivery.messages[-1]
    assert isinstance(last, LiveReadings)
    assert last.items[0].readings[-1].value == per_message * messages - 1
    assert value(metrics.bus_dropped) == delivery.dropped
    assert value(metrics.bus_published) == messages


def test_on_ready_is_called_only_when_something_arrives_for_an_idle_subscriber(
    bus: MemoryBus,
) -> None:
    """What lets a WebSocket hold no sender task while nothing flows."""
    calls: list[int] = []
    sub = bus.subscribe([Channel.READINGS], backlog=100, on_ready=lambda: calls.append(1))
    bus.publish(readings(1))
    bus.publish(readings(1, start=1))  # still waiting: no second call
    assert calls == [1]
    assert sub.take() is not None
    bus.publish(readings(1, start=2))
    assert calls == [1, 1]
    sub.take()
    sub.interrupt()
    assert calls == [1, 1, 1]
    sub.close()
    bus.publish(readings(1, start=3))
    assert calls == [1, 1, 1]


async def test_closing_wakes_a_waiting_reader_and_ends_iteration(bus: MemoryBus) -> None:
    """How a server shutting down ends the SSE streams waiting on its feed."""
    from telehub.bus.subscription import SubscriptionClosed

    sub = bus.subscribe([Channel.READINGS])
    waiter = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(SubscriptionClosed):
        await waiter
    assert [d async for d in sub] == []
