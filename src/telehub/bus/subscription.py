"""One subscriber's bounded backlog: the rule that keeps a slow reader from hurting anyone.

``offer`` never waits. When the backlog is over its limit the oldest messages
go, for this subscriber only, and the next delivery says how much was dropped.
The limit counts readings (an event counts one), since a commit can carry
thousands of readings in one message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from telehub.domain.live import BusMessage, LiveReadings, Revoked


class SubscriptionClosed(Exception):
    """The subscription was closed while its reader waited."""


class Channel(StrEnum):
    READINGS = "readings"
    EVENTS = "events"
    REVOCATIONS = "revocations"


def channel_of(message: BusMessage) -> Channel:
    if isinstance(message, LiveReadings):
        return Channel.READINGS
    return Channel.REVOCATIONS if isinstance(message, Revoked) else Channel.EVENTS


@dataclass(frozen=True, slots=True)
class Delivery:
    """Everything waiting for a subscriber, oldest first.

    ``dropped`` counts readings and events lost to overflow since the previous
    delivery; ``interrupted`` says the bus itself lost an unknown number (its
    connection to Redis broke).
    """

    messages: list[BusMessage]
    dropped: int = 0
    interrupted: bool = False

    @property
    def lost(self) -> bool:
        return self.dropped > 0 or self.interrupted


class Subscription:
    """Use as an async context manager (it leaves the bus on exit) and async iterator."""

    def __init__(
        self,
        *,
        channels: frozenset[Channel],
        limit: int,
        on_drop: Callable[[int], None],
        on_close: Callable[[Subscription], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.channels = channels
        self._limit = limit
        self._on_drop = on_drop
        self._on_close = on_close
        # Called when something arrives for a subscriber that had nothing waiting:
        # lets a WebSocket start its sender only then, so an idle one holds no task.
        self._on_ready = on_ready
        # A list and a lazily made future, not a deque and an Event: thousands of
        # idle subscribers each hold these, and the empty forms are far smaller.
        self._backlog: list[BusMessage] = []
        self._weight = 0
        self._dropped = 0
        self._interrupted = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def backlog(self) -> int:
        """Readings and events waiting (the unit of the limit)."""
        return self._weight

    def offer(self, message: BusMessage) -> None:
        """Queue ``message``; on overflow drop the oldest. Never waits."""
        if self._closed:
            return
        was_empty = not self._pending()
        self._backlog.append(message)
        self._weight += message.weight
        if self._weight > self._limit and len(self._backlog) > 1:
            # The newest message always stays, even one heavier than the whole limit.
            cut, dropped = 0, 0
            while self._weight - dropped > self._limit and cut < len(self._backlog) - 1:
                dropped += self._backlog[cut].weight
                cut += 1
            del self._backlog[:cut]
            self._weight -= dropped
            self._dropped += dropped
            self._on_drop(dropped)
        self._wake(was_empty)

    def interrupt(self) -> None:
        """The bus lost messages it cannot count; the next delivery says so."""
        was_empty = not self._pending()
        self._interrupted = True
        self._wake(was_empty)

    def _pending(self) -> bool:
        return bool(self._backlog) or self._dropped > 0 or self._interrupted

    def _wake(self, was_empty: bool) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if was_empty and self._on_ready is not None:
            self._on_ready()

    def take(self) -> Delivery | None:
        """Everything waiting now, or None if nothing is."""
        if not self._pending():
            return None
        delivery = Delivery(self._backlog, self._dropped, self._interrupted)
        self._backlog = []
        self._weight = self._dropped = 0
        self._interrupted = False
        return delivery

    async def wait(self) -> None:
        """Until something is waiting (returns at once if it already is).

        Raises SubscriptionClosed once the subscription is closed (by its owner,
        or by the process shutting its feeds down).
        """
        while not self._pending():
            if self._closed:
                raise SubscriptionClosed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def next(self) -> Delivery:
        while True:
            delivery = self.take()
            if delivery is not None:
                return delivery
            await self.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backlog = []
            self._weight = 0
            self._dropped = 0
            self._interrupted = False
            self._on_close(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self.next()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
