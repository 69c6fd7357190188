"""One subscriber's bounded backlog: the rule that keeps a slow reader from hurting anyone.

``offer`` never waits. When the backlog is over its limit the oldest messages
go, for this subscriber only, and the next delivery says how much was dropped.
The limit counts readings (an event counts one), since a commit can carry
thousands of readings in one message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from telehub.domain.live import BusMessage, LiveReadings


class Channel(StrEnum):
    READINGS = "readings"
    EVENTS = "events"


def channel_of(message: BusMessage) -> Channel:
    return Channel.READINGS if isinstance(message, LiveReadings) else Channel.EVENTS


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
    ) -> None:
        self.channels = channels
        self._limit = limit
        self._on_drop = on_drop
        self._on_close = on_close
        self._backlog: deque[BusMessage] = deque()
        self._weight = 0
        self._dropped = 0
        self._interrupted = False
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def backlog(self) -> int:
        """Readings and events waiting (the unit of the limit)."""
        return self._weight

    def offer(self, message: BusMessage) -> None:
        """Queue ``message``; on overflow drop the oldest. Never waits."""
        if self._closed:
            return
        self._backlog.append(message)
        self._weight += message.weight
        dropped = 0
        # The newest message always stays, even one heavier than the whole limit.
        while self._weight > self._limit and len(self._backlog) > 1:
            old = self._backlog.popleft()
            self._weight -= old.weight
            dropped += old.weight
        if dropped:
            self._dropped += dropped
            self._on_drop(dropped)
        self._ready.set()

    def interrupt(self) -> None:
        """The bus lost messages it cannot count; the next delivery says so."""
        self._interrupted = True
        self._ready.set()

    def take(self) -> Delivery | None:
        """Everything waiting now, or None if nothing is."""
        if not self._backlog and not self._dropped and not self._interrupted:
            return None
        delivery = Delivery(list(self._backlog), self._dropped, self._interrupted)
        self._backlog.clear()
        self._weight = self._dropped = 0
        self._interrupted = False
        self._ready.clear()
        return delivery

    async def wait(self) -> None:
        """Until something is waiting (returns at once if it already is)."""
        await self._ready.wait()

    async def next(self) -> Delivery:
        while True:
            delivery = self.take()
            if delivery is not None:
                return delivery
            await self._ready.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backlog.clear()
            self._weight = 0
            self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        return await self.next()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
