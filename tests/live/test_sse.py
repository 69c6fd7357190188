"""The Server-Sent Events feed, against a real server: what an EventSource client relies on.

Where the storage matters (resume, restart, trimming, ordering, a slow client
caught up from the log) tests run on SQLite and PostgreSQL; pure protocol and
validation tests are pinned to SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from telehub.config import Settings
from telehub.core.events import presence_event
from telehub.domain.devices import Scope
from telehub.domain.live import Event, EventDraft, EventType
from telehub.domain.readings import now_us
from telehub.runtime import Hub, open_hub
from tests.live.support import LiveServer, gauge, live_server, wait_for

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])

EVENTS = "/api/v1/events"
PROBLEM = "urn:telehub:problem:"
COMMAND_FIELDS = {"command_id", "device_id", "batch_id", "name", "status", "result", "at"}


# --- reading the stream ------------------------------------------------------------------


@dataclass
class Block:
    """One block of a text/event-stream, up to its blank line."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        found = [v for k, v in self.fields if k == name]
        assert len(found) <= 1, self
        return found[0] if found else None

    @property
    def id(self) -> int | None:
        raw = self.value("id")
        return None if raw is None else int(raw)

    @property
    def event(self) -> str | None:
        return self.value("event")

    @property
    def data(self) -> Any:
        raw = self.value("data")
        return None if raw is None else orjson.loads(raw)


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def block(self) -> Block:
        block = Block()
        async with asyncio.timeout(5):
            async for line in self._lines:
                if line == "":
                    if block.fields or block.comments:
                        return block
                    continue
                if line.startswith(":"):
                    block.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    block.fields.append((name, value.removeprefix(" ")))
        raise AssertionError(f"the stream ended after {block}")

    async def events(self, count: int) -> list[Block]:
        """The next ``count`` events (blocks with fields); keep-alive comments are skipped."""
        out: list[Block] = []
        async with asyncio.timeout(10):
            while len(out) < count:
                block = await self.block()
                if block.fields:
                    out.append(block)
        return out

    async def event(self) -> Block:
        [block] = await self.events(1)
        return block

    async def events_through(self, last_id: int) -> list[Block]:
        """Events up to and including the one with ``last_id``."""
        out: list[Block] = []
        async with asyncio.timeout(10):
            while not out or out[-1].id is None or out[-1].id < last_id:
                out.append(await self.event())
        return out


@contextlib.asynccontextmanager
async def stream(
    http: httpx.AsyncClient,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Stream]:
    """An open feed, past its first block (``retry``), so the server has subscribed."""
    async with http.stream("GET", EVENTS, params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        sse = Stream(response)
        first = await sse.block()
        assert first.fields == [("retry", "3000")], first
        yield sse


def ids(blocks: list[Block]) -> list[int | None]:
    return [b.id for b in blocks]


def as_blocks(events: list[Event]) -> list[tuple[int, str, Any]]:
    return [(e.id, e.type.value, e.data) for e in events]


def seen(blocks: list[Block]) -> list[tuple[int | None, str | None, Any]]:
    return [(b.id, b.event, b.data) for b in blocks]


def increasing(values: list[int | None]) -> bool:
    numbers = [v for v in values if v is not None]
    return len(numbers) == len(values) and all(a < b for a, b in itertools.pairwise(numbers))


# --- producing events --------------------------------------------------------------------


async def add_device(hub: Hub, device_id: str) -> str:
    _, token = await hub.devices.create(device_id=device_id, name=None, attributes={})
    return token


async def flip(hub: Hub, device_id: str, n: int) -> list[Event]:
    """``n`` presence changes of one device, through the real service; the events logged."""
    before = await newest(hub)
    for _ in range(n):
        online = not (await hub.devices.get(device_id)).online
        assert await hub.devices.report_presence(device_id, online=online, live=True)
    return await hub.events.after(before)


async def newest(hub: Hub) -> int:
    bounds = await hub.events.bounds()
    return bounds[1] if bounds else 0


async def record(hub: Hub, drafts: list[EventDraft]) -> list[Event]:
    events = await hub.events.record(drafts)
    assert len(events) == len(drafts)
    return events


def padded(count: int) -> list[EventDraft]:
    """Events of ~1 KB each: a thousand are far more than a stalled connection buffers."""
    return [
        EventDraft(EventType.JOBS, "dev-1", now_us(), {"n": i, "pad": "x" * 1000})
        for i in range(count)
    ]


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


# --- resume ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["Last-Event-ID", "after"])
async def test_resume_after_a_disconnect_gets_exactly_what_was_missed(
    server: LiveServer, how: str
) -> None:
    hub = server.hub
    await add_device(hub, "dev-1")
    async with server.http() as http:
        async with stream(http) as sse:
            before = await flip(hub, "dev-1", 3)
            got = await sse.events(3)
            assert seen(got) == as_blocks(before)
        last = got[-1].id
        assert last is not None

        missed = await flip(hub, "dev-1", 4)
        resume = (
            {"headers": {"Last-Event-ID": str(last)}}
            if how == "Last-Event-ID"
            else {"params": {"after": str(last)}}
        )
        async with stream(http, **resume) as sse:
            assert seen(await sse.events(4)) == as_blocks(missed)
            live = await flip(hub, "dev-1", 2)
            assert seen(await sse.events(2)) == as_blocks(live)

        # Resuming from the newest id: nothing to catch up, the next event is a live one.
        newest_id = live[-1].id
        async with stream(http, headers={"Last-Event-ID": str(newest_id)}) as sse:
            later = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(later)


async def test_resume_with_events_logged_during_the_catch_up_sends_each_once_in_order(
    make_settings: Callable[..., Settings], small_send_buffers: None
) -> None:
    """Catching up on a lot takes a while; events logged meanwhile reach the stream
    both live and from the log: each must be sent once, in id order, with no hole."""
    async with open_hub(make_settings()) as hub, live_server(hub) as server:
        await add_device(hub, "dev-1")
        [start] = await flip(hub, "dev-1", 1)
        expected: list[Event] = []
        for _ in range(25):  # three pages of catch-up, ~2.5 MB: the server blocks in page 1
            expected += await record(hub, padded(100))
        async with server.http() as http, stream(http, params={"after": str(start.id)}) as sse:
            # Logged (and handed to the stream's live feed) before the server reads page 3.
            for _ in range(5):
                expected += await flip(hub, "dev-1", 1)
                expected += await record(hub, padded(5))
            got = await sse.events_through(expected[-1].id)
            assert seen(got) == as_blocks(expected)
            # Nothing is sent twice after the catch-up either: next comes the next event.
            live = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(live)


async def test_an_eventsource_reconnect_resumes_from_its_header_not_its_url(
    server: LiveServer,
) -> None:
    """A browser reconnects to the same URL (``?after=`` as first given) with the newer
    Last-Event-ID header: it must not be sent again what it already has."""
    hub = server.hub
    await add_device(hub, "dev-1")
    first = await flip(hub, "dev-1", 2)
    async with server.http() as http:
        url = {"after": str(first[0].id)}
        async with stream(http, url) as sse:
            got = await sse.events(1)
            assert seen(got) == as_blocks(first[1:])
        missed = await flip(hub, "dev-1", 2)
        async with stream(http, url, headers={"Last-Event-ID": str(got[-1].id)}) as sse:
            assert seen(await sse.events(2)) == as_blocks(missed)
            live = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(live)


async def test_resume_after_a_restart_loses_nothing(settings: Settings) -> None:
    async with open_hub(settings) as hub, live_server(hub) as server:
        await add_device(hub, "dev-1")
        read = await server.token(Scope.READ)
        async with server.http() as http, stream(http, {"token": read}) as sse:
            before = await flip(hub, "dev-1", 3)
            got = await sse.events(3)
        assert seen(got) == as_blocks(before)
        missed = await flip(hub, "dev-1", 2)

    async with open_hub(settings) as hub:
        missed += await flip(hub, "dev-1", 1)  # written by the new hub before a server runs
        # live_server bootstraps an admin token, which only a fresh install gets.
        for token in await hub.tokens.list():
            if token.scope is Scope.ADMIN:
                await hub.tokens.delete(token.id)
        async with live_server(hub) as server, server.http() as http:
            resume = stream(http, {"token": read}, headers={"Last-Event-ID": str(got[-1].id)})
            async with resume as sse:
                assert seen(await sse.events(3)) == as_blocks(missed)
                live = await flip(hub, "dev-1", 1)
                assert seen([await sse.event()]) == as_blocks(live)
    assert increasing(ids(got) + [e.id for e in missed + live])


async def test_a_trimmed_log_sends_a_gap_with_the_missed_count_then_the_kept_events(
    make_settings: Callable[..., Settings],
) -> None:
    keep = 100
    async with (
        open_hub(make_settings(event_log_keep=keep)) as hub,
        live_server(hub) as server,
        server.http() as http,
    ):
        await add_device(hub, "dev-1")
        async with stream(http) as sse:
            [seen_last] = await flip(hub, "dev-1", 1)
            assert (await sse.event()).id == seen_last.id

        produced: list[Event] = []
        for batch in range(30):
            online = batch % 2 == 0
            produced += await record(hub, [presence_event("dev-1", online=online)] * 10)

        async with stream(http, headers={"Last-Event-ID": str(seen_last.id)}) as sse:
            gap = await sse.event()
            assert gap.event == "gap"
            got = await sse.events_through(produced[-1].id)
            live = await flip(hub, "dev-1", 1)
            assert seen([await sse.event()]) == as_blocks(live)

    assert gap.data["reason"] == "trimmed"
    missed = gap.data["missed"]
    assert missed > 0
    # What was missed plus what came is everything since the client's id, once each.
    assert missed + len(got) == len(produced)
    assert seen(got) == as_blocks(produced[missed:])
    # The gap moves the client's Last-Event-ID to just before the oldest kept event,
    # so a reconnect does not report the same loss again.
    assert gap.id == produced[missed].id - 1
    assert len(got) >= keep


@pytest.mark.parametrize("beyond", [1, 1000, 2**70])
async def test_an_unknown_last_event_id_sends_a_gap_then_only_live_events(
    server: LiveServer, beyond: int
) -> None:
    hub = server.hub
    await add_device(hub, "dev-1")
    old = await flip(hub, "dev-1", 3)
    # An id from another log (the database was reset): start from now.
    unknown = {"Last-Event-ID": str(old[-1].id + beyond)}
    async with server.http() as http, stream(http, headers=unknown) as sse:
        gap = await sse.event()
        assert (gap.event, gap.id) == ("gap", old[-1].id)  # resume from the log's end
        assert gap.data == {"missed": None, "reason": "unknown-last-event-id"}
        live = await flip(hub, "dev-1", 2)
        assert seen(await sse.events(2)) == as_blocks(live)


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
