"""One contract for every bus backend, on the in-memory bus and on real Redis.

Each test opens its buses on a channel prefix of its own, so parallel runs on
the shared Redis never hear each other. The Redis-only tests cover what the
memory bus has no counterpart for: several processes (simulated by several bus
instances), prefixes and bytes on the wire; Redis going wrong is in test_bus_redis_failures.py.
"""

from __future__ import annotations

import math

import pytest

from telehub.bus import Channel, codec
from telehub.domain.live import BusMessage, LiveReadings, LoggedEvents
from telehub.domain.readings import Reading, Telemetry
from tests.services.bus_support import (
    BASE_US,
    FLOATS,
    Opener,
    commit,
    content,
    logged,
    receive,
    value,
)
from tests.services.redis_support import (
    unique_prefix,
)


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
        commit("dev-1", 1.0, state={"fw": [1, 4], "ok": None}),  # readings and state
        commit("dev-1", state="open"),  # state only
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
