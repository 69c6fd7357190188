"""A TCP proxy that can be cut: takes a real service away from a hub, then brings it back.

The system PostgreSQL keeps running; only the hub's road to it is closed. The
proxy runs on a thread with its own event loop, as a network would: the hub
may block its loop on a database call (closing its COPY writer does) and the
bytes must still flow.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``host:port`` until ``cut``; ``restore`` reopens it.

    ``stall`` drops every open connection and then accepts new ones without ever
    answering: a database that hangs instead of refusing.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self.port = 0
        self._silent = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")

    async def __aenter__(self) -> Self:
        self._thread.start()
        await self.restore()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.cut()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
            self._loop.close()

    async def restore(self) -> None:
        """Forward again (on the same port after a cut)."""
        await self._run(self._listen(silent=False))

    async def cut(self) -> None:
        """Stop listening, so new connections are refused, and drop every open one."""
        await self._run(self._drop())

    async def stall(self) -> None:
        """Drop every open connection; accept new ones but never pass a byte."""
        await self._run(self._drop())
        await self._run(self._listen(silent=True))

    async def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def _listen(self, *, silent: bool) -> None:
        self._silent = silent
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _drop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            if self._silent:
                await reader.read()  # until the proxy drops it
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                return
            self._writers.add(upstream_writer)
            try:
                async with asyncio.TaskGroup() as pumps:
                    pumps.create_task(_pump(reader, upstream_writer), name="proxy-up")
                    pumps.create_task(_pump(upstream_reader, writer), name="proxy-down")
            finally:
                upstream_writer.transport.abort()
                self._writers.discard(upstream_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until either side closes; then close both (the other pump ends)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()
