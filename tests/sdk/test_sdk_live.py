"""The live feeds of both SDKs: tail (WebSocket) and events (SSE), against a real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from telehub.client import AsyncClient, Client, LiveClosed, Unauthorized
from telehub.hub import Hub
from tests.live.support import LiveServer, gauge, live_server, log_records, wait_for


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        await hub.devices.create(device_id="dev-1", name=None, attributes={})
        yield running


async def test_async_tail_sees_readings_as_they_are_committed(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as client:
        stream = client.tail(devices=["dev-1"], metrics=["temperature"])

        async def first() -> dict[str, Any]:
            async for message in stream:
                if message["type"] == "readings":
                    return message
            raise AssertionError("the tail ended")

        subscribers = server.hub.metrics.bus_subscribers
        before = gauge(subscribers)
        reading = asyncio.create_task(first())
        await wait_for(lambda: gauge(subscribers) > before, 10)  # subscribed, its filter set
        await client.send_telemetry("dev-1", {"temperature": 21.5, "humidity": 40})
        async with asyncio.timeout(10):
            message = await reading

    assert [(r["device_id"], r["metric"], r["value"]) for r in message["readings"]] == [
        ("dev-1", "temperature", 21.5)
    ]


async def test_sync_tail_sees_readings_as_they_are_committed(server: LiveServer) -> None:
    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def read() -> None:
        with Client(server.base, token=server.admin) as client:
            for message in client.tail(devices=["dev-1"]):
                ready.set()
                if message["type"] == "readings":
                    got.append(message)
                    return

    reader = asyncio.create_task(asyncio.to_thread(read))
    async with AsyncClient(server.base, token=server.admin) as client:
        async with asyncio.timeout(10):
            while not reader.done() and not got:
                # Until the reader is subscribed, a reading may pass unseen: send again.
                await client.send_telemetry("dev-1", {"temperature": 20.0})
                await asyncio.sleep(0.2)
        await asyncio.wait_for(reader, 10)

    assert got[0]["readings"][0]["metric"] == "temperature"


async def test_events_resume_after_the_last_id_seen_on_both(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as client:
        first = await client.send_command("dev-1", "reboot", ttl_s=60)
        second = await client.send_command("dev-1", "ping", ttl_s=60)
        seen = []
        async with asyncio.timeout(10):
            # From the start of the log: these commands were logged before the feed opened.
            async for event in client.events(types=["commands"], last_event_id="0"):
                seen.append(event)
                if len(seen) == 2:
                    break
        resumed = []
        async with asyncio.timeout(10):
            async for event in client.events(types=["commands"], last_event_id=seen[0].id):
                resumed.append(event)
                break

    def sync_resume() -> Any:
        with Client(server.base, token=server.admin) as blocking:
            for event in blocking.events(types=["commands"], last_event_id=seen[0].id):
                return event
        return None

    from_sync = await asyncio.to_thread(sync_resume)

    assert [e.json()["command_id"] for e in seen] == [first.id, second.id]  # type: ignore[index]
    assert resumed[0].id == seen[1].id
    assert (from_sync.id, from_sync.data) == (resumed[0].id, resumed[0].data)


async def test_a_bad_token_is_unauthorized_on_the_live_feeds(server: LiveServer) -> None:
    async with AsyncClient(server.base, token="tha_unknown") as client:
        with pytest.raises(Unauthorized):
            await anext(client.events())
    with pytest.raises(Unauthorized):
        await asyncio.to_thread(lambda: next(Client(server.base, token="tha_unknown").events()))


async def test_both_sdks_send_the_token_in_a_header_never_in_a_url(hub: Hub) -> None:
    """Every request line the server logs for the SDKs' live feeds is free of any token."""
    secret = "tha_" + "x" * 43  # refused, which ends each feed at once
    async with live_server(hub, log_level="info", access_log=True) as server:
        with log_records() as records:
            async with AsyncClient(server.base, token=secret) as client:
                with pytest.raises(LiveClosed):
                    await anext(client.tail())
                with pytest.raises(Unauthorized):
                    await anext(client.events())

            def blocking() -> None:
                with Client(server.base, token=secret) as client:
                    with pytest.raises(LiveClosed):
                        next(client.tail())
                    with pytest.raises(Unauthorized):
                        next(client.events())

            await asyncio.to_thread(blocking)
    lines = [r.getMessage() for r in records if r.name in ("uvicorn.error", "uvicorn.access")]
    assert sum('"WebSocket /api/v1/ws" [accepted]' in line for line in lines) == 2, lines
    assert sum('"GET /api/v1/events' in line for line in lines) == 2, lines
    assert not [line for line in lines if "token=" in line or "[redacted]" in line]
