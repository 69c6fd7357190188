"""The Server-Sent Events feed, against a real server: what an EventSource client relies on.

Basics, validation, a slow client and shutdown here; resuming in test_sse_resume.py.
Where the storage matters tests run on SQLite and PostgreSQL; pure protocol and
validation tests are pinned to SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from telehub.config import Settings
from telehub.core.events import presence_event
from telehub.domain.devices import Scope
from telehub.domain.live import Event, EventDraft, EventType
from telehub.domain.readings import now_us
from telehub.hub import open_hub
from tests.live.sse_support import (
    COMMAND_FIELDS,
    EVENTS,
    PROBLEM,
    Stream,
    add_device,
    as_blocks,
    flip,
    ids,
    increasing,
    newest,
    padded,
    record,
    seen,
    sqlite_only,
    stream,
)
from tests.live.support import LiveServer, gauge, live_server, wait_for

# --- basics ------------------------------------------------------------------------------


async def test_presence_and_a_command_lifecycle_stream_in_order(server: LiveServer) -> None:
    hub = server.hub
    await add_device(hub, "dev-1")
    async with server.http() as http:
        async with http.stream("GET", EVENTS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].split(";")[0] == "text/event-stream"
            assert response.headers["cache-control"] == "no-cache"
            sse = Stream(response)
            assert (await sse.block()).fields == [("retry", "3000")]

            assert await hub.devices.report_presence("dev-1", online=True, live=True)
            # A report that changes nothing is no event.
            assert not await hub.devices.report_presence("dev-1", online=True, live=True)
            command = await hub.commands.send("dev-1", name="reboot", params={"a": 1}, ttl_s=60)
            assert [c.id for c in await hub.commands.claim_due()] == [command.id]
            await hub.commands.acknowledge("dev-1", command.id, ok=True, result={"rebooted": 1})
            assert await hub.devices.report_presence("dev-1", online=False, live=True)

            got = await sse.events(5)
        await wait_for(lambda: gauge(hub.metrics.sse_connections) == 0)

    assert [b.event for b in got] == ["presence", "commands", "commands", "commands", "presence"]
    assert increasing(ids(got))
    assert ids(got) == [e.id for e in await hub.events.after(0)]
    first, pending, sent, acked, last = (b.data for b in got)
    assert first.keys() == {"device_id", "online", "at"}
    assert (first["device_id"], first["online"]) == ("dev-1", True)
    assert (last["device_id"], last["online"]) == ("dev-1", False)
    for data in (pending, sent, acked):
        assert data.keys() == COMMAND_FIELDS
        assert data["command_id"] == command.id
        assert (data["device_id"], data["name"], data["batch_id"]) == ("dev-1", "reboot", None)
    assert [d["status"] for d in (pending, sent, acked)] == ["pending", "sent", "acked"]
    assert [d["result"] for d in (pending, sent, acked)] == [None, None, {"rebooted": 1}]
    for data in (first, pending, sent, acked, last):
        assert data["at"].endswith("Z")
        datetime.fromisoformat(data["at"])


async def test_filters_by_type_and_device_live_and_on_resume(server: LiveServer) -> None:
    hub = server.hub
    for device in ("dev-1", "dev-2", "dev-3"):
        await add_device(hub, device)
    filters: dict[str, dict[str, str]] = {
        "commands": {"types": "commands"},
        "dev-2": {"devices": "dev-2"},
        # Spaces after the commas are allowed, as a person would type the list.
        "presence of 1 and 3": {"types": "presence, alerts", "devices": "dev-1, dev-3"},
    }

    def wanted(name: str, event: Event) -> bool:
        f = {k: [v.strip() for v in vs.split(",")] for k, vs in filters[name].items()}
        return ("types" not in f or event.type.value in f["types"]) and (
            "devices" not in f or event.device_id in f["devices"]
        )

    async def produce() -> list[Event]:
        start = await newest(hub)
        await flip(hub, "dev-1", 1)
        await hub.commands.send("dev-2", name="ping", params={}, ttl_s=60)
        await flip(hub, "dev-2", 1)
        await hub.commands.send("dev-1", name="ping", params={}, ttl_s=60)
        await flip(hub, "dev-3", 1)
        await record(hub, [EventDraft(EventType.ALERTS, None, now_us(), {"fleet": True})])
        await hub.commands.send("dev-3", name="ping", params={}, ttl_s=60)
        return await hub.events.after(start)

    async def sentinel(name: str) -> Event:
        """One more event this stream wants: the next one it gets must be exactly it."""
        draft = {
            "commands": EventDraft(EventType.COMMANDS, "dev-9", now_us(), {"end": name}),
            "dev-2": EventDraft(EventType.JOBS, "dev-2", now_us(), {"end": name}),
            "presence of 1 and 3": presence_event("dev-3", online=True),
        }[name]
        [event] = await record(hub, [draft])
        return event

    async with server.http() as http, contextlib.AsyncExitStack() as streams:
        live = {n: await streams.enter_async_context(stream(http, f)) for n, f in filters.items()}
        logged = await produce()
        for name, sse in live.items():
            expected = [e for e in logged if wanted(name, e)]
            assert 0 < len(expected) < len(logged)
            assert seen(await sse.events(len(expected))) == as_blocks(expected), name
            end = await sentinel(name)
            assert seen([await sse.event()]) == as_blocks([end]), name

    # The same filters on the resume path (read from the log, not the live feed).
    everything = await hub.events.after(0)
    async with server.http() as http:
        for name, f in filters.items():
            async with stream(http, f | {"after": "0"}) as sse:
                expected = [e for e in everything if wanted(name, e)]
                assert seen(await sse.events(len(expected))) == as_blocks(expected), name
                end = await sentinel(name)
                assert seen([await sse.event()]) == as_blocks([end]), name


@sqlite_only
@pytest.mark.parametrize(
    ("params", "headers", "parameter"),
    [
        ({"types": "nope"}, {}, "types"),
        ({"types": "presence,nope"}, {}, "types"),
        ({"types": ","}, {}, "types"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "1.5"}, "Last-Event-ID"),
        ({"after": "-1"}, {}, "after"),
        ({"after": "x"}, {}, "after"),
    ],
)
async def test_invalid_parameters_are_a_422_problem(
    server: LiveServer, params: dict[str, str], headers: dict[str, str], parameter: str
) -> None:
    async with server.http() as http:
        r = await http.get(EVENTS, params=params, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + "invalid-input"
    assert body["status"] == 422
    assert body["errors"][0]["parameter"] == parameter


@sqlite_only
async def test_a_token_is_required_and_must_have_read_scope(server: LiveServer) -> None:
    device_token = await add_device(server.hub, "dev-1")
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as anonymous:
        r = await anonymous.get(EVENTS)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == PROBLEM + "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"

        r = await anonymous.get(EVENTS, params={"token": "tha_not-a-token"})
        assert r.status_code == 401

        for r in (
            await anonymous.get(EVENTS, headers={"Authorization": f"Bearer {device_token}"}),
            await anonymous.get(EVENTS, params={"token": device_token}),
        ):
            assert r.status_code == 403
            assert r.json()["type"] == PROBLEM + "forbidden"

        # EventSource cannot set headers: a read token in the query string is enough.
        read = await server.token(Scope.READ)
        async with stream(anonymous, {"token": read, "types": "presence"}) as sse:
            [event] = await flip(server.hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks([event])


@sqlite_only
async def test_keep_alive_comments_while_nothing_happens(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(sse_keepalive_seconds=0.2)
    async with open_hub(settings) as hub, live_server(hub) as server, server.http() as http:
        await add_device(hub, "dev-1")
        async with stream(http) as sse:
            for _ in range(2):
                block = await sse.block()
                assert block.fields == []
                assert block.comments == ["keep-alive"]
            [event] = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks([event])


# --- a slow client -----------------------------------------------------------------------


async def test_a_client_that_stops_reading_still_gets_every_event_in_order(
    make_settings: Callable[..., Settings], small_send_buffers: None
) -> None:
    """Its backlog overflows (events are dropped for it alone), then it is caught up
    from the log: every event once, in order."""
    async with (
        open_hub(make_settings(bus_subscriber_backlog=100)) as hub,
        live_server(hub) as server,
    ):
        await add_device(hub, "dev-1")
        async with server.http() as http, stream(http) as sse:
            dropped = gauge(hub.metrics.bus_dropped)
            produced: list[Event] = []
            for _ in range(100):
                produced += await record(hub, padded(10))
            # The test is only worth something if this client's backlog overflowed.
            await wait_for(lambda: gauge(hub.metrics.bus_dropped) > dropped)

            got = await sse.events_through(produced[-1].id)
            assert seen(got) == as_blocks(produced)
            live = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(live)


async def test_a_client_stalled_beyond_what_the_log_keeps_is_told_of_the_gap(
    make_settings: Callable[..., Settings], small_send_buffers: None
) -> None:
    """Caught up from a log that was trimmed meanwhile: a gap with the count, not a silent
    jump."""
    settings = make_settings(bus_subscriber_backlog=100, event_log_keep=100)
    async with open_hub(settings) as hub, live_server(hub) as server:
        await add_device(hub, "dev-1")
        async with server.http() as http, stream(http) as sse:
            dropped = gauge(hub.metrics.bus_dropped)
            produced: list[Event] = []
            for _ in range(100):
                produced += await record(hub, padded(10))
            await wait_for(lambda: gauge(hub.metrics.bus_dropped) > dropped)

            got = await sse.events_through(produced[-1].id)
            live = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(live)

    [at] = [i for i, block in enumerate(got) if block.event == "gap"]
    before, gap, after = got[:at], got[at], got[at + 1 :]
    assert after[0].id is not None
    assert gap.id == after[0].id - 1
    assert gap.data["reason"] == "trimmed"
    assert seen(before) == as_blocks(produced[: len(before)])
    assert seen(after) == as_blocks(produced[len(produced) - len(after) :])
    assert gap.data["missed"] == len(produced) - len(before) - len(after)
    assert gap.data["missed"] > 0


async def test_shutting_down_ends_open_streams_instead_of_waiting_for_them(
    server: LiveServer,
) -> None:
    """uvicorn waits up to 10 s for responses to finish; an SSE stream never does by
    itself, so the server ends it when shutdown starts (its client resumes elsewhere)."""
    async with server.http() as http, http.stream("GET", EVENTS) as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 3000"
        server.server.should_exit = True
        async with asyncio.timeout(5):  # well inside uvicorn's graceful 10 s
            rest = [line async for line in lines]
    assert all(line == "" or line.startswith(":") for line in rest), rest
