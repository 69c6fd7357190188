"""One contract for every bus backend, on the in-memory bus and on real Redis.

Each test opens its buses on a channel prefix of its own, so parallel runs on
the shared Redis never hear each other. The Redis-only tests cover what the
memory bus has no counterpart for: several processes (simulated by several bus
instances), prefixes, bytes on the wire, and Redis going away and coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from telehub.bus import Bus, Channel, Delivery, Subscription, bus_for, codec
from telehub.config import load_settings
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage, Event, EventType, LiveReadings, LoggedEvents
from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.errors import ConfigError
from telehub.runtime import open_hub
from tests.services.redis_support import (
    REDIS_URL,
    RedisServer,
    eventually,
    free_port,
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


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def _buses(kind: str) -> AsyncIterator[Opener]:
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


@pytest.fixture
async def open_bus(kind: str) -> AsyncIterator[Opener]:
    async with _buses(kind) as opener:
        yield opener


@pytest.fixture
async def redis_open_bus() -> AsyncIterator[Opener]:
    """Like ``open_bus``, for the tests that only mean something on Redis."""
    async with _buses("redis") as opener:
        yield opener


@pytest.fixture
async def raw_redis() -> AsyncIterator[Redis]:
    """A plain redis-py client, for what no bus would ever send."""
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


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

    Readings: device ids, metrics, timestamps and values (device state is not a
    live message's business and does not cross processes); events: everything.
    """
    if isinstance(message, LiveReadings):
        return (
            "readings",
            message.committed_us,
            message.weight,
            [
                (t.device_id, [(r.device_id, r.metric, r.ts_us, r.value) for r in t.readings])
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


async def test_every_subscriber_gets_every_message_in_publish_order(open_bus: Opener) -> None:
    opened = await open_bus()
    bus = opened.bus
    sent: list[BusMessage] = []
    for n in range(20):
        sent.append(commit(f"dev-{n % 4}", *(float(n * 10 + i) for i in range(n % 5 + 1)), start=n))
        if n % 3 == 0:
            sent.append(logged(n, n + 1))
    async with (
        bus.subscribe([Channel.READINGS, Channel.EVENTS]) as first,
        bus.subscribe([Channel.EVENTS, Channel.READINGS]) as second,
        bus.subscribe([Channel.READINGS]) as only_readings,
        bus.subscribe([Channel.EVENTS]) as only_events,
    ):
        for message in sent:
            bus.publish(message)
        expected = [content(m) for m in sent]
        assert [content(m) for m in await receive(first, len(sent))] == expected
        assert [content(m) for m in await receive(second, len(sent))] == expected
        readings = [m for m in sent if isinstance(m, LiveReadings)]
        events = [m for m in sent if isinstance(m, LoggedEvents)]
        got_readings = await receive(only_readings, len(readings))
        got_events = await receive(only_events, len(events))
        assert [content(m) for m in got_readings] == [content(m) for m in readings]
        assert [content(m) for m in got_events] == [content(m) for m in events]
        for sub in (first, second, only_readings, only_events):
            assert sub.take() is None
    assert value(opened.metrics.bus_published) == len(sent)
    assert value(opened.metrics.bus_dropped) == 0


async def test_values_and_text_arrive_exactly(open_bus: Opener) -> None:
    bus = (await open_bus()).bus
    readings = commit("dev-float", *FLOATS, state="Zürich ☀ 温度")
    data = {
        "text": 'Grüße, 温度 ✓ 🚀 \u2028 "quoted" \\ \n',
        "nested": {"ключ": ["é", None, True, 1.5e-300, -0.0, 2**63 - 1]},
        "empty": {},
    }
    events = logged(1, data=data)
    async with bus.subscribe([Channel.READINGS, Channel.EVENTS]) as sub:
        bus.publish(readings)
        bus.publish(events)
        got_readings, got_events = await receive(sub, 2)
    assert content(got_readings) == content(readings)
    assert content(got_events) == content(events)
    assert isinstance(got_readings, LiveReadings)
    values = [r.value for r in got_readings.items[0].readings]
    assert [math.copysign(1.0, v) for v in values] == [math.copysign(1.0, v) for v in FLOATS]
    assert all(type(v) is float for v in values)
    assert isinstance(got_events, LoggedEvents)
    assert math.copysign(1.0, got_events.events[0].data["nested"]["ключ"][4]) == -1.0


@pytest.mark.parametrize(
    "message",
    [
        commit("dev-1", *FLOATS),
        commit("dev-1"),  # a submission whose readings were all state
        LiveReadings(
            items=(
                Telemetry("dev-a", (Reading("dev-a", "t", BASE_US, 1.0),), ()),
                Telemetry("dev-b", (Reading("dev-b", "t.x_y-z", 0, -0.0),), ()),
            ),
            committed_us=0,
        ),
        logged(1, 2, 3),
        logged(7, data={"ü": "😀", "list": [1, 2.5, None], "deep": {"a": {"b": {}}}}),
    ],
)
def test_the_codec_round_trips(message: BusMessage) -> None:
    decoded = codec.decode(codec.encode(message))
    assert content(decoded) == content(message)
    assert decoded == message


async def test_an_overflowing_backlog_drops_the_oldest(open_bus: Opener) -> None:
    opened = await open_bus()
    bus = opened.bus
    sent = [commit("dev-1", *(float(n),) * 4, start=n * 4) for n in range(5)]
    async with (
        bus.subscribe([Channel.READINGS], backlog=10) as small,
        bus.subscribe([Channel.READINGS], backlog=1000) as witness,
    ):
        for message in sent:
            bus.publish(message)
        # The witness is offered every message together with the small one: once it
        # has them all, so has the small one.
        await receive(witness, len(sent))
        delivery = small.take()
    assert delivery is not None
    # 20 readings into a limit of 10: the three oldest commits (12 readings) went.
    assert [content(m) for m in delivery.messages] == [content(m) for m in sent[3:]]
    assert delivery.dropped == 12
    assert not delivery.interrupted
    assert value(opened.metrics.bus_dropped) == 12


@pytest.mark.services
async def test_buses_on_one_prefix_hear_each_other(redis_open_bus: Opener) -> None:
    """Two processes (two bus instances): each one's subscribers get both's messages."""
    one, two = (await redis_open_bus()).bus, (await redis_open_bus()).bus
    async with (
        one.subscribe([Channel.READINGS, Channel.EVENTS]) as on_one,
        two.subscribe([Channel.READINGS, Channel.EVENTS]) as on_two,
    ):
        from_one, from_two = commit("dev-1", 1.0), logged(5)
        one.publish(from_one)
        assert [content(m) for m in await receive(on_two, 1)] == [content(from_one)]
        two.publish(from_two)
        assert [content(m) for m in await receive(on_one, 2)] == [
            content(from_one),
            content(from_two),
        ]
        assert [content(m) for m in await receive(on_two, 1)] == [content(from_two)]


@pytest.mark.services
async def test_other_prefixes_are_not_heard(redis_open_bus: Opener) -> None:
    ours = (await redis_open_bus()).bus
    theirs = (await redis_open_bus(prefix=unique_prefix("other"))).bus
    async with (
        ours.subscribe([Channel.READINGS, Channel.EVENTS]) as on_ours,
        theirs.subscribe([Channel.READINGS, Channel.EVENTS]) as on_theirs,
    ):
        ours.publish(commit("dev-ours", 1.0))
        ours.publish(logged(1))
        # Once our own subscriber has both, Redis has dispatched them to every
        # subscriber of every channel; a later marker on their prefix comes after.
        await receive(on_ours, 2)
        marker = commit("dev-theirs", 2.0)
        theirs.publish(marker)
        assert [content(m) for m in await receive(on_theirs, 1)] == [content(marker)]
        assert on_ours.take() is None
        assert on_theirs.take() is None


MALFORMED = [
    b"not json",
    b"\xff\xfe\x00",
    b"",
    b"[]",
    b"null",
    b'"r"',
    b"{}",
    b'{"x": 1}',
    b'{"r": 5, "c": 1}',
    b'{"r": [], "c": "soon"}',
    b'{"r": [["dev-1", [["t", 1]]]], "c": 1}',
    b'{"r": [["dev-1", [["t", 1, 2.0]]]]}',
    b'{"r": [["dev-1", [["t", "yesterday", 2.0]]]], "c": 1}',
    b'{"r": [["dev-1", [["t", 1, "hot"]]]], "c": 1}',
    b'{"r": [[7, [["t", 1, 2.0]]]], "c": 1}',
    b'{"r": [["dev-1", [[null, 1, 2.0]]]], "c": 1}',
    b'{"e": 3}',
    b'{"e": [[1, "weather", null, 0, {}]]}',
    b'{"e": [["one", "commands", null, 0, {}]]}',
    b'{"e": [[1, "commands", null, "now", {}]]}',
    b'{"e": [[1, "commands", 5, 0, {}]]}',
    b'{"e": [[1, "commands", null, 0, []]]}',
    b'{"e": [[1, "commands", null, 0]]}',
]


@pytest.mark.services
async def test_malformed_messages_are_logged_and_skipped(
    redis_open_bus: Opener, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = unique_prefix()
    bus = (await redis_open_bus(prefix=prefix)).bus
    async with bus.subscribe([Channel.READINGS, Channel.EVENTS]) as sub:
        for raw in MALFORMED:
            for channel in Channel:
                await raw_redis.publish(f"{prefix}:{channel.value}", raw)
        # Published after the bad ones were dispatched: they are handled by the time it arrives.
        good = [commit("dev-1", 1.0, 2.0), logged(1)]
        for message in good:
            bus.publish(message)
        got = await receive(sub, 2)
        assert [content(m) for m in got] == [content(m) for m in good]
        assert sub.take() is None
    ignored = [
        r
        for r in caplog.records
        if r.name == "telehub.bus.redis"
        and r.levelno == logging.WARNING
        and "malformed" in r.getMessage()
    ]
    assert len(ignored) == 2 * len(MALFORMED), [r.getMessage() for r in ignored]


@pytest.mark.services
async def test_a_redis_outage_interrupts_subscribers_and_the_bus_recovers(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        settings = load_settings(bus_url=server.url, bus_channel_prefix=unique_prefix())
        metrics = Metrics()
        async with (
            bus_for(settings, metrics) as bus,
            bus.subscribe([Channel.READINGS]) as sub,
        ):
            first = commit("dev-before", 1.0)
            bus.publish(first)
            assert [content(m) for m in await receive(sub, 1)] == [content(first)]

            server.kill()
            async with asyncio.timeout(WITHIN):
                delivery = await sub.next()
            assert delivery == Delivery([], dropped=0, interrupted=True)

            # Publishing neither raises nor waits while Redis is gone; the outbox is
            # bounded and counts what it drops. No await here: the sender cannot run.
            outbox = 10_000
            for n in range(outbox + 50):
                bus.publish(commit("dev-during", float(n), start=n))
            assert value(metrics.bus_dropped) == 50

            server.start()
            await _until_heard_again(bus, sub)
            after = [commit("dev-after", float(n), start=n) for n in range(3)]
            for message in after:
                bus.publish(message)
            got = await receive_from(sub, "dev-after", 3)
            assert [content(m) for m in got] == [content(m) for m in after]
    finally:
        server.kill()


@pytest.mark.services
async def test_a_message_lost_while_resubscribing_is_reported_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Subscribers that took the first interruption are told again once the bus is back.

    Another process may publish between Redis coming back and this one
    resubscribing (it is backing off); those messages are lost too.
    """
    server = RedisServer(tmp_path / "redis")
    server.start()
    prefix = unique_prefix()
    try:
        settings = load_settings(bus_url=server.url, bus_channel_prefix=prefix)
        async with (
            bus_for(settings, Metrics()) as bus,
            bus.subscribe([Channel.READINGS]) as sub,
            Redis.from_url(server.url) as other_process,
        ):
            server.kill()
            async with asyncio.timeout(WITHIN):
                assert (await sub.next()).interrupted

            # Once the receiver is in a 1 s back-off, the restart falls inside it.
            async def backing_off() -> bool:
                return any("reconnecting in 1.00s" in r.getMessage() for r in caplog.records)

            await eventually(backing_off, what="the receiver to back off for 1 s")
            sub.take()
            server.start()
            missed = commit("dev-missed", 1.0)
            await other_process.publish(f"{prefix}:readings", codec.encode(missed))

            deliveries: list[Delivery] = []
            async with asyncio.timeout(30):
                while not any(_has(d, "dev-probe") for d in deliveries):
                    bus.publish(commit("dev-probe", 1.0))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.25):
                            deliveries.append(await sub.next())
    finally:
        server.kill()
    first_heard = next(i for i, d in enumerate(deliveries) if d.messages)
    assert any(d.interrupted for d in deliveries[: first_heard + 1]), deliveries


def _has(delivery: Delivery, device_id: str) -> bool:
    return any(
        isinstance(m, LiveReadings) and m.items[0].device_id == device_id for m in delivery.messages
    )


@pytest.mark.services
async def test_publishing_into_a_full_outbox_keeps_the_batch_in_flight(tmp_path: Path) -> None:
    """While Redis holds a batch, publish overflows the outbox: the oldest waiting go,
    counted, and exactly those; the batch in flight arrives."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        settings = load_settings(
            bus_url=server.url,
            bus_channel_prefix=unique_prefix(),
            bus_subscriber_backlog=100_000,
        )
        metrics = Metrics()
        async with (
            bus_for(settings, metrics) as bus,
            bus.subscribe([Channel.READINGS]) as sub,
            Redis.from_url(server.url) as admin,
        ):
            # Redis holds PUBLISH (a write) until unpaused: the sender's batch waits there.
            await admin.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
            try:
                sent = [commit("dev-1", float(n), start=n) for n in range(10_011)]
                bus.publish(sent[0])

                async def in_flight() -> bool:
                    return int((await admin.info("clients"))["blocked_clients"]) >= 1

                await eventually(in_flight, what="the sender's batch held by Redis")
                for message in sent[1:]:
                    bus.publish(message)
                # The outbox holds 10,000 besides the batch in flight: 10 over.
                assert value(metrics.bus_dropped) == 10
            finally:
                await admin.execute_command("CLIENT", "UNPAUSE")
            expected = [sent[0], *sent[11:]]
            got = await receive(sub, len(expected), within=30)
    finally:
        server.kill()
    assert [content(m) for m in got] == [content(m) for m in expected]


@pytest.mark.services
async def test_a_message_json_cannot_carry_is_dropped_and_the_bus_goes_on(
    redis_open_bus: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """A device may answer a command with an integer beyond 64 bits; the event says so."""
    opened = await redis_open_bus()
    bus = opened.bus
    async with bus.subscribe([Channel.READINGS, Channel.EVENTS]) as sub:
        bus.publish(logged(1, data={"result": 2**70}))
        after = [logged(2), commit("dev-1", 1.0)]
        for message in after:
            bus.publish(message)
        got = await receive(sub, 2)
    assert [content(m) for m in got] == [content(m) for m in after]
    assert value(opened.metrics.bus_dropped) == 1
    assert any("cannot be encoded" in r.getMessage() for r in caplog.records)


async def _until_heard_again(bus: Bus, sub: Subscription) -> None:
    """Publish probes until one comes back: the receiver has reconnected and resubscribed."""
    async with asyncio.timeout(30):
        for n in range(1_000_000):
            bus.publish(commit("dev-probe", float(n)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    while True:
                        delivery = await sub.next()
                        if any(
                            isinstance(m, LiveReadings) and m.items[0].device_id == "dev-probe"
                            for m in delivery.messages
                        ):
                            return


async def test_an_unreachable_redis_fails_the_start_naming_the_setting(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/telehub.db",
        bus_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with asyncio.timeout(WITHIN):
        with pytest.raises(ConfigError, match="TELEHUB_BUS_URL") as raised:
            async with open_hub(settings):
                pass
    assert "127.0.0.1" in str(raised.value)
