"""The bus subscriptions of open server streams, so that shutdown can end them at once.

A live subscription or a Watch never ends by itself: left alone it would hold
the server's stop for the whole grace period, which is meant for calls that
finish (a Publish stream). Shutdown closes them first; each then ends
UNAVAILABLE with a retry delay, telling its client to subscribe again
(elsewhere).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from telehub.bus import Bus, Channel, Subscription
from telehub.errors import ShuttingDown

RETRY_AFTER = 1.0


class LiveStreams:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._open: set[Subscription] = set()
        self._closing = False

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Iterable[Channel]) -> AsyncIterator[Subscription]:
        self.check()
        subscription = self._bus.subscribe(channels)
        self._open.add(subscription)
        try:
            yield subscription
        finally:
            self._open.discard(subscription)
            subscription.close()

    def check(self) -> None:
        """Raise ShuttingDown once shutdown began: a stream that ended for that says so."""
        if self._closing:
            raise ShuttingDown(
                "the server is shutting down; subscribe again", retry_after=RETRY_AFTER
            )

    def close(self) -> None:
        self._closing = True
        for subscription in list(self._open):
            subscription.close()
