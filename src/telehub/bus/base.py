"""The bus: publish never waits, and each process fans out to its own subscribers.

A backend only decides how a published message reaches every process (directly
in memory, or through Redis pub/sub); the local fan-out into bounded
subscriber backlogs is the same for all, here.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType

from telehub.bus.subscription import Channel, Subscription, channel_of
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage


class Bus(abc.ABC):
    """Base of the backends. Enter it (``async with``) for the life of the hub."""

    def __init__(self, *, metrics: Metrics, backlog: int) -> None:
        self._metrics = metrics
        self._backlog = backlog
        self._subscribers: dict[Channel, set[Subscription]] = {c: set() for c in Channel}
        metrics.bus_subscribers.set_function(lambda: len(set().union(*self._subscribers.values())))

    @abc.abstractmethod
    def publish(self, message: BusMessage) -> None:
        """Send ``message`` to every subscriber of its channel in every process; never waits."""

    def subscribe(
        self,
        channels: Iterable[Channel],
        *,
        backlog: int | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> Subscription:
        """A new subscriber with a bounded backlog (``bus_subscriber_backlog`` by default).

        ``on_ready`` is called when something arrives while nothing was waiting.
        """
        subscription = Subscription(
            channels=frozenset(channels),
            limit=backlog if backlog is not None else self._backlog,
            on_drop=self._metrics.bus_dropped.inc,
            on_close=self._forget,
            on_ready=on_ready,
        )
        for channel in subscription.channels:
            self._subscribers[channel].add(subscription)
        return subscription

    def _deliver(self, message: BusMessage) -> None:
        """Hand a message that reached this process to its local subscribers."""
        for subscription in self._subscribers[channel_of(message)]:
            subscription.offer(message)

    def _interrupt(self) -> None:
        for subscription in set().union(*self._subscribers.values()):
            subscription.interrupt()

    def _forget(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            self._subscribers[channel].discard(subscription)

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """What the backend runs in the background while it is entered."""
        yield

    async def __aenter__(self) -> Bus:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(self._running())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
