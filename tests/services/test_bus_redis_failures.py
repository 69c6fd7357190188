"""The Redis bus when things go wrong: bad messages, outages, a full outbox, no server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from redis.asyncio import Redis

from telehub.bus import Bus, Channel, Delivery, Subscription, bus_for, codec
from telehub.config import load_settings
from telehub.core.metrics import Metrics
from telehub.domain.live import LiveReadings
from telehub.errors import ConfigError
from telehub.hub import open_hub
from tests.services.bus_support import (
    WITHIN,
    Opener,
    commit,
    content,
    logged,
    receive,
    receive_from,
    value,
)
from tests.services.redis_support import (
    RedisServer,
    eventually,
    free_port,
    unique_prefix,
)

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
    assert len(ignored) == len(Channel) * len(MALFORMED), [r.getMessage() for r in ignored]


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
