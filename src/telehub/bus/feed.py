"""The event log in commit order, for this process's SSE clients.

One task per process follows the log: the bus says when something was logged
(in any process), and the feed hands it to local subscribers strictly in id
order. When the announced events do not follow on from what it has (another
process's announcement overtook, or Redis lost one), it reads the log itself;
it also looks every ``poll_seconds`` in case an announcement never came. So a
subscriber sees every event after the moment it subscribed, once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telehub.bus.base import Bus
from telehub.bus.subscription import Channel, Subscription
from telehub.core.events import EventLog
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage, Event, LoggedEvents

log = logging.getLogger(__name__)

_PAGE = 1000


class EventFeed:
    def __init__(
        self, *, bus: Bus, events: EventLog, metrics: Metrics, poll_seconds: float, backlog: int
    ) -> None:
        self._bus = bus
        self._events = events
        self._metrics = metrics
        self._poll = poll_seconds
        self._backlog = backlog
        self._subscribers: set[Subscription] = set()
        self._cursor = 0
        self._started = asyncio.Event()

    @property
    def cursor(self) -> int:
        """The id of the newest event handed to subscribers (or logged before the start)."""
        return self._cursor

    async def started(self) -> None:
        await self._started.wait()

    def close_subscribers(self) -> None:
        """End every local subscriber's wait (the server is shutting down)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def subscribe(self) -> Subscription:
        """Every event logged after this call, in id order, as LoggedEvents messages."""
        subscription = Subscription(
            channels=frozenset({Channel.EVENTS}),
            limit=self._backlog,
            on_drop=self._metrics.bus_dropped.inc,
            on_close=self._subscribers.discard,
        )
        self._subscribers.add(subscription)
        return subscription

    async def run(self) -> None:
        """Follow the log until cancelled; run it as a named task for the life of the app."""
        async with self._bus.subscribe([Channel.EVENTS], backlog=100 * _PAGE) as announced:
            bounds = await self._read_bounds()
            self._cursor = bounds[1] if bounds else 0
            self._started.set()
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await announced.wait()
                delivery = announced.take()
                fresh = _contiguous(self._cursor, delivery.messages) if delivery else None
                if fresh is None or (delivery is not None and delivery.lost):
                    await self._catch_up()
                elif fresh:
                    self._hand_out(fresh)

    async def _read_bounds(self) -> tuple[int, int] | None:
        while True:
            try:
                return await self._events.bounds()
            except Exception as exc:  # the database is down at start: keep trying
                log.warning("event feed: cannot read the event log (%s); retrying", exc)
                await asyncio.sleep(self._poll)

    async def _catch_up(self) -> None:
        while True:
            try:
                page = await self._events.after(self._cursor, limit=_PAGE)
            except Exception as exc:
                log.warning("event feed: cannot read the event log (%s); will retry", exc)
                return
            if page:
                self._hand_out(page)
            if len(page) < _PAGE:
                return

    def _hand_out(self, events: list[Event]) -> None:
        self._cursor = events[-1].id
        message = LoggedEvents(tuple(events))
        for subscription in self._subscribers:
            subscription.offer(message)


def _contiguous(cursor: int, messages: list[BusMessage]) -> list[Event] | None:
    """The announced events past ``cursor`` if they follow on from it, else None."""
    fresh: list[Event] = []
    expected = cursor + 1
    for message in messages:
        assert isinstance(message, LoggedEvents)
        for event in message.events:
            if event.id < expected:
                continue  # already handed out (read from the log before its announcement came)
            if event.id != expected:
                return None
            fresh.append(event)
            expected += 1
    return fresh
