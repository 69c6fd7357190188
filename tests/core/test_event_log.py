"""The durable event log and the per-process feed that follows it, on real storage.

What SSE resume relies on: ids increase in commit order (also across processes on
PostgreSQL), ``after`` reads exactly what follows an id, trimming keeps at least
``event_log_keep``, and the feed hands each event to a subscriber once, in id order,
whether or not its bus announcement arrives, and in whatever order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from telehub.bus.feed import EventFeed
from telehub.bus.subscription import Subscription
from telehub.config import Settings
from telehub.domain.live import Event, EventDraft, EventType, LoggedEvents
from telehub.domain.readings import now_us
from telehub.hub import Hub, open_hub


def draft(
    n: int = 0, *, type: EventType = EventType.PRESENCE, device: str | None = "dev-1"
) -> EventDraft:
    return EventDraft(type=type, device_id=device, at_us=now_us(), data={"n": n})


def ids(events: list[Event]) -> list[int]:
    return [e.id for e in events]


async def record(hub: Hub, *drafts: EventDraft) -> list[Event]:
    events = await hub.events.record(list(drafts))
    assert len(events) == len(drafts), "record() logged nothing (its failure was logged)"
    return events


# --- the log -----------------------------------------------------------------------------


async def test_an_empty_log_has_no_bounds_and_nothing_after_zero(hub: Hub) -> None:
    assert await hub.events.bounds() is None
    assert await hub.events.after(0) == []


async def test_ids_strictly_increase_and_after_reads_what_follows(hub: Hub) -> None:
    logged: list[Event] = []
    logged += await record(hub, draft(0))
    logged += await record(hub, draft(1), draft(2), draft(3))
    logged += await record(hub, draft(4, device=None, type=EventType.JOBS))

    assert all(a < b for a, b in zip(ids(logged), ids(logged)[1:], strict=False))
    stored = await hub.events.after(0)
    assert stored == logged  # same ids, types, devices, times and data, in id order
    assert [e.data["n"] for e in stored] == [0, 1, 2, 3, 4]
    assert await hub.events.after(logged[1].id) == logged[2:]
    assert await hub.events.after(logged[-1].id) == []
    assert await hub.events.bounds() == (logged[0].id, logged[-1].id)


async def test_after_filters_by_type_and_device_and_respects_limit(hub: Hub) -> None:
    logged = await record(
        hub,
        draft(0, type=EventType.PRESENCE, device="a"),
        draft(1, type=EventType.COMMANDS, device="a"),
        draft(2, type=EventType.PRESENCE, device="b"),
        draft(3, type=EventType.ALERTS, device=None),
        draft(4, type=EventType.COMMANDS, device="b"),
        draft(5, type=EventType.PRESENCE, device="c"),
    )
    by_n = {e.data["n"]: e for e in logged}

    def picked(*ns: int) -> list[Event]:
        return [by_n[n] for n in ns]

    assert await hub.events.after(0, types={EventType.PRESENCE}) == picked(0, 2, 5)
    assert await hub.events.after(0, types={EventType.COMMANDS, EventType.ALERTS}) == picked(
        1, 3, 4
    )
    assert await hub.events.after(0, device_ids={"b"}) == picked(2, 4)
    assert await hub.events.after(0, device_ids={"a", "c"}) == picked(0, 1, 5)
    assert await hub.events.after(0, types={EventType.PRESENCE}, device_ids={"a", "b"}) == picked(
        0, 2
    )
    # An event of no device matches no device filter.
    assert await hub.events.after(0, types={EventType.ALERTS}, device_ids={"a"}) == []
    assert await hub.events.after(0, limit=2) == picked(0, 1)
    assert await hub.events.after(by_n[1].id, limit=2) == picked(2, 3)
    assert await hub.events.after(by_n[0].id, types={EventType.PRESENCE}, limit=1) == picked(2)


async def test_trimming_keeps_the_newest_and_never_fewer_than_keep(
    make_settings: Callable[..., Settings],
) -> None:
    keep = 100
    async with open_hub(make_settings(event_log_keep=keep)) as hub:
        logged: list[Event] = []
        # Batches of many sizes, one larger than the whole log.
        for size in [1, 7, 50, 1, 99, 3, 250, 1, 1, 60, 45, 1]:
            logged += await record(hub, *(draft(len(logged) + i) for i in range(size)))
            kept = await hub.events.after(0, limit=10_000)
            assert len(kept) >= min(len(logged), keep)
            assert len(kept) < 2 * keep  # about keep: the table does not grow without bound
            assert kept == logged[-len(kept) :]  # the newest, contiguous with the present
            assert await hub.events.bounds() == (kept[0].id, logged[-1].id)
        assert len(logged) > 3 * keep  # the log really was trimmed more than once


async def test_concurrent_appends_get_unique_ids_all_readable_in_order(hub: Hub) -> None:
    async def writer(task: int) -> list[int]:
        out: list[int] = []
        for i in range(20):
            [event] = await record(hub, draft(task * 100 + i, device=f"dev-{task}"))
            out.append(event.id)
        return out

    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(writer(t)) for t in range(20)]
    written = [i for run in runs for i in run.result()]

    assert len(set(written)) == 400
    for run in runs:  # each task saw its own ids increase
        assert run.result() == sorted(run.result())
    stored = ids(await hub.events.after(0))
    assert stored == sorted(written)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.services)])
async def test_two_processes_appending_never_make_an_id_visible_before_a_smaller_one(
    settings: Settings, hub: Hub
) -> None:
    """Two hubs (two engines, as in two API processes) write while a follower reads.

    A follower that reads "after the newest id I saw" loses an event for good if
    that event becomes visible after a larger id: it must end with every id.
    """
    seen: list[int] = []
    writing = True

    async def writer(h: Hub, task: int) -> list[int]:
        out: list[int] = []
        for i in range(20):
            for event in await record(h, draft(i, device=f"w{task}"), draft(i, device=f"w{task}")):
                out.append(event.id)
        return out

    async def follower() -> None:
        cursor = 0
        while True:
            done = not writing  # read once more after the writers finished
            page = await hub.events.after(cursor, limit=10_000)
            assert all(e.id > cursor for e in page)
            assert ids(page) == sorted(ids(page))
            seen.extend(ids(page))
            if page:
                cursor = page[-1].id
            if done:
                return
            await asyncio.sleep(0)

    async with open_hub(settings, migrate=False) as other, asyncio.TaskGroup() as tasks:
        following = tasks.create_task(follower())
        async with asyncio.TaskGroup() as writers:
            runs = [writers.create_task(writer(h, t)) for t, h in enumerate([hub, other] * 10)]
        writing = False
        await following
    written = sorted(i for run in runs for i in run.result())

    assert len(written) == 20 * 20 * 2
    assert seen == written


# --- the feed ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_feed(hub: Hub, *, poll_seconds: float) -> AsyncIterator[EventFeed]:
    feed = EventFeed(
        bus=hub.bus, events=hub.events, metrics=hub.metrics, poll_seconds=poll_seconds, backlog=100
    )
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(feed.run(), name="test-event-feed")
        await feed.started()
        try:
            yield feed
        finally:
            task.cancel()


async def received(subscription: Subscription, count: int) -> list[Event]:
    """The next ``count`` events handed to ``subscription`` (failing if more come at once)."""
    out: list[Event] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            delivery = await subscription.next()
            assert not delivery.lost
            for message in delivery.messages:
                assert isinstance(message, LoggedEvents)
                out.extend(message.events)
    assert len(out) == count, f"more than {count} event(s): {ids(out)}"
    return out


async def append_unannounced(hub: Hub, *drafts: EventDraft) -> list[Event]:
    """Straight into the log, as another process would, with no announcement on our bus."""
    return await hub.store.events.append(list(drafts), keep=hub.settings.event_log_keep)


async def test_feed_starts_at_the_end_of_the_log(hub: Hub) -> None:
    before = await record(hub, draft(0), draft(1))
    async with running_feed(hub, poll_seconds=0.05) as feed:
        assert feed.cursor == before[-1].id
        subscription = feed.subscribe()
        after = await record(hub, draft(2))
        assert await received(subscription, 1) == after


async def test_feed_delivers_announced_events_without_waiting_for_a_poll(hub: Hub) -> None:
    # A poll interval longer than the test's timeout: only the announcements can deliver.
    async with running_feed(hub, poll_seconds=60) as feed:
        subscription = feed.subscribe()
        logged = await record(hub, draft(0))
        logged += await record(hub, draft(1), draft(2))
        assert await received(subscription, 3) == logged
        assert feed.cursor == logged[-1].id


async def test_feed_finds_events_that_were_never_announced(hub: Hub) -> None:
    async with running_feed(hub, poll_seconds=0.05) as feed:
        subscription = feed.subscribe()
        silent = await append_unannounced(hub, draft(0))
        silent += await append_unannounced(hub, draft(1), draft(2))
        assert await received(subscription, 3) == silent
        # Later polls hand out nothing again: the next delivery is only the next event.
        announced = await record(hub, draft(3))
        assert await received(subscription, 1) == announced


async def test_feed_hands_out_once_in_id_order_when_announcements_come_out_of_order(
    hub: Hub,
) -> None:
    async with running_feed(hub, poll_seconds=60) as feed:
        subscription = feed.subscribe()
        a, b, c = await append_unannounced(hub, draft(0), draft(1), draft(2))
        # c's announcement overtakes a's and b's: the feed reads a, b, c from the log.
        hub.bus.publish(LoggedEvents((c,)))
        assert await received(subscription, 3) == [a, b, c]
        # The late and repeated announcements change nothing.
        hub.bus.publish(LoggedEvents((a, b)))
        hub.bus.publish(LoggedEvents((c,)))
        [d] = await record(hub, draft(3))
        assert await received(subscription, 1) == [d]


async def test_feed_subscribers_each_get_every_event_after_they_subscribed(hub: Hub) -> None:
    async with running_feed(hub, poll_seconds=0.05) as feed:
        early = feed.subscribe()
        first = await record(hub, draft(0))
        assert await received(early, 1) == first
        late = feed.subscribe()
        rest = await record(hub, draft(1))
        rest += await append_unannounced(hub, draft(2))
        assert await received(early, 2) == rest
        assert await received(late, 2) == rest
