"""Waiting for a live session to end, on each transport, within a deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from telehub.client.grpc_calls import GrpcError
from telehub.hub import Hub
from tests.live.support import gauge, wait_for

WITHIN = 10.0  # seconds for a revoked session to end: a deadline, never an expectation
T = TypeVar("T")


async def close_of(ws: ClientConnection) -> tuple[int, str]:
    """The code and reason the server closed ``ws`` with (what arrives before is dropped)."""
    try:
        async with asyncio.timeout(WITHIN):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        frame = closed.rcvd
    except TimeoutError:
        pytest.fail(f"the WebSocket was still open {WITHIN} s after its credential was revoked")
    assert frame is not None, "the server sent no close frame"
    return frame.code, frame.reason


class SseStream:
    """An SSE response read line by line."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def event(self) -> dict[str, str]:
        """The next event's fields (comments, ``retry:`` and keep-alives skipped)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(WITHIN):
            async for line in self._lines:
                if line == "":
                    if "event" in fields:
                        return fields
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def end(self) -> None:
        """Until the server ends the response (what comes before is dropped)."""
        try:
            async with asyncio.timeout(WITHIN):
                async for _ in self._lines:
                    pass
        except TimeoutError:
            pytest.fail(f"the SSE stream was still open {WITHIN} s after its token was revoked")


@contextlib.asynccontextmanager
async def sse(
    http: httpx.AsyncClient, *, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[SseStream]:
    """An open event stream, past its first line: the server has registered it."""
    async with http.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = SseStream(response)
        first = await anext(stream._lines)
        assert first.startswith("retry:"), first
        yield stream


@dataclass
class Ending(Generic[T]):
    """A gRPC server stream read in the background: what it sent, and the error it ended on."""

    received: asyncio.Queue[T] = field(default_factory=asyncio.Queue)
    error: GrpcError | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self, stream: AsyncIterator[T]) -> None:
        try:
            async for message in stream:
                self.received.put_nowait(message)
        except GrpcError as exc:
            self.error = exc
        finally:
            self.done.set()

    async def next(self) -> T:
        async with asyncio.timeout(WITHIN):
            return await self.received.get()

    async def failure(self) -> GrpcError:
        """The error the stream ended with, once it ends."""
        try:
            async with asyncio.timeout(WITHIN):
                await self.done.wait()
        except TimeoutError:
            pytest.fail(f"the gRPC stream was still open {WITHIN} s after its token was revoked")
        assert self.error is not None, "the stream ended without an error"
        return self.error


@contextlib.asynccontextmanager
async def streaming(hub: Hub, stream: AsyncIterator[T]) -> AsyncIterator[Ending[T]]:
    """Read ``stream`` in the background; enter once the server has joined the bus."""
    ending: Ending[T] = Ending()
    before = gauge(hub.metrics.bus_subscribers)
    task = asyncio.create_task(ending.pump(stream), name="test-grpc-stream")
    try:
        await wait_for(lambda: task.done() or gauge(hub.metrics.bus_subscribers) > before)
        assert not task.done(), f"the stream ended at once: {ending.error}"
        yield ending
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def feed(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """What is put on ``queue``, until a None."""
    while (item := await queue.get()) is not None:
        yield item
