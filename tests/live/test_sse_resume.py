"""SSE resume: Last-Event-ID / ?after= after a disconnect, a restart or a trimmed log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from telehub.config import Settings
from telehub.core.events import presence_event
from telehub.domain.devices import Scope
from telehub.domain.live import Event
from telehub.hub import open_hub
from tests.live.sse_support import (
    add_device,
    as_blocks,
    flip,
    ids,
    increasing,
    padded,
    record,
    seen,
    stream,
)
from tests.live.support import LiveServer, live_server

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
