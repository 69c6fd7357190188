"""uvicorn's sans-I/O WebSocket protocol, lighter per idle connection.

A dashboard connection mostly sits idle, and at thousands of them what each
holds is the memory bill. uvicorn keeps, per connection, an ``asyncio.Queue``
(three deques, ~1.9 KiB empty) for messages to the app and the handshake's
request and response objects (with their headers) for the connection's whole
life. Here the queue is a list with one future, and the handshake objects are
let go once the accept is sent. Behaviour is uvicorn's own, but for a peer
dropped by keep-alive (:meth:`LeanWebSocketProtocol.keepalive_timeout`); the
live tests run through this class.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)

# The reason of the ``websocket.disconnect`` the app gets for a peer dropped by keep-alive.
KEEPALIVE_TIMEOUT = "keepalive ping timeout"


class PeerDropped(ClientDisconnected):
    """A send to a peer the server dropped because it stopped answering pings."""


class _LightQueue:
    """The part of asyncio.Queue uvicorn uses: put_nowait, get, empty. One consumer."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _LightQueue()  # type: ignore[assignment]
        self.dropped = False

    def keepalive_timeout(self) -> None:
        """The peer let a ping go unanswered: it is gone, an expected event, not an error.

        uvicorn sends a 1011 close and closes the transport, which first waits for
        the data not yet sent; a client that stopped reading never takes it, so the
        connection stayed for good, and every later send of the app raised
        RuntimeError (not ClientDisconnected), an ERROR traceback a frame. Here the
        transport is aborted instead, the app gets a ``websocket.disconnect`` whose
        reason says why (it counts it), and its sends raise :class:`PeerDropped`.
        """
        if self.close_sent or self.transport.is_closing():
            return
        super().keepalive_timeout()
        self.dropped = True
        if self.client:
            log.debug("%s:%d - WebSocket dropped: no pong within the ping timeout", *self.client)
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": 1011, "reason": KEEPALIVE_TIMEOUT}
        )
        self.transport.abort()

    async def send(self, message: Any) -> None:
        if self.dropped:
            raise PeerDropped()
        try:
            await super().send(message)
        except ClientDisconnected:
            if self.dropped:  # it was waiting for the peer to read when the peer was dropped
                raise PeerDropped() from None
            raise
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Only the handshake used them; the headers the app needs are in its scope.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
