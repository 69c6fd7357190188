"""The bus subscriptions of open server streams, so that shutdown can end them at once.

A live subscription or a Watch never ends by itself: left alone it would hold
the server's stop for the whole grace period, which is meant for calls that
finish (a Publish stream). Shutdown closes them first; each then ends
UNAVAILABLE with a retry delay, telling its client to subscribe again
(elsewhere). Each is also a live session of its caller's credential: when
that is revoked, its subscription closes and the stream ends UNAUTHENTICATED.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from telehub.bus import Bus, Channel, Subscription
from telehub.bus.subscription import SubscriptionClosed
from telehub.core.sessions import SessionRegistry
from telehub.domain.devices import Principal
from telehub.errors import ShuttingDown, Unauthenticated

RETRY_AFTER = 1.0


class LiveStreams:
    def __init__(self, bus: Bus, sessions: SessionRegistry) -> None:
        self._bus = bus
        self._sessions = sessions
        self._open: set[Subscription] = set()
        self._closing = False

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channels: Iterable[Channel], principal: Principal
    ) -> AsyncIterator[Subscription]:
        """A subscription for ``principal``'s stream; raises Unauthenticated once the
        credential is revoked (the subscription is closed then, which ends the body)."""
        self.check()
        subscription = self._bus.subscribe(channels)
        self._open.add(subscription)
        session = self._sessions.register(
            principal, transport="grpc", on_revoke=lambda _: subscription.close()
        )
        try:
            yield subscription
        except SubscriptionClosed:
            if session.revoked:
                raise _revoked() from None
            raise
        finally:
            session.close()
            self._open.discard(subscription)
            subscription.close()
        if session.revoked:
            raise _revoked()

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


def _revoked() -> Unauthenticated:
    return Unauthenticated("the credential of this stream was revoked")
