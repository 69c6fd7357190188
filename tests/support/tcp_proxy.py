"""A TCP proxy the test can break: takes a real service away from a hub, then brings it back.

The system PostgreSQL keeps running; only the hub's road to it is broken, in
one of three ways: ``cut`` (refused and reset: a database that is down, which
fails fast), ``stall`` (reset, then accepted and never answered) and
``black_hole`` (a silent partition: every connection stays open and nothing
passes either way, so nothing fails, it only waits). The proxy runs on a
thread with its own event loop, as a network would: the hub may block its
loop on a database call (closing its COPY writer does) and the bytes must
still flow.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``host:port`` until broken; ``restore`` mends it.

    The port stays the same across breaks and restores.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self.port = 0
        self._silent = False
        self._passing = asyncio.Event()  # cleared: a black hole (only used on the proxy's loop)
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
        """Forward again, on the same port; bytes a black hole held back flow on."""
        await self._run(self._mend())

    async def cut(self) -> None:
        """Stop listening, so new connections are refused, and reset every open one."""
        await self._run(self._drop())

    async def stall(self) -> None:
        """Reset every open connection; accept new ones but never pass a byte."""
        await self._run(self._drop())
        await self._run(self._listen(silent=True))

    async def black_hole(self) -> None:
        """Pass nothing more, either way, on open connections and new ones, and say nothing.

        Bytes already sent are taken (so the sender's TCP sees them acknowledged)
        and held: a partition that TCP does not notice, like a dead link behind a
        switch or a firewall that drops packets.
        """
        await self._run(self._block())

    async def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def _mend(self) -> None:
        self._passing.set()
        if self._server is None:
            await self._listen(silent=False)
        self._silent = False

    async def _block(self) -> None:
        self._passing.clear()
        if self._server is None:
            await self._listen(silent=False)
        self._silent = False

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
        self._passing.set()  # what a black hole held back goes nowhere: its road is reset
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
            await self._passing.wait()
            if writer.transport.is_closing():
                return  # reset while it waited
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                return
            self._writers.add(upstream_writer)
            try:
                async with asyncio.TaskGroup() as pumps:
                    pumps.create_task(self._pump(reader, upstream_writer), name="proxy-up")
                    pumps.create_task(self._pump(upstream_reader, writer), name="proxy-down")
            finally:
                upstream_writer.transport.abort()
                self._writers.discard(upstream_writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until either side closes; then close both (the other pump ends)."""
        try:
            while data := await reader.read(65536):
                await self._passing.wait()
                if writer.transport.is_closing():
                    return  # reset while it waited
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
