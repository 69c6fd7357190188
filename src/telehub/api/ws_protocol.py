"""uvicorn's sans-I/O WebSocket protocol, lighter per idle connection.

A dashboard connection mostly sits idle, and at thousands of them what each
holds is the memory bill. uvicorn keeps, per connection, an ``asyncio.Queue``
(three deques, ~1.9 KiB empty) for messages to the app and the handshake's
request and response objects (with their headers) for the connection's whole
life. Here the queue is a list with one future, and the handshake objects are
let go once the accept is sent. Behaviour is uvicorn's own; the live tests
run through this class.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


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

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Only the handshake used them; the headers the app needs are in its scope.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
