"""Reading an SSE stream block by block, and producing events, for the SSE tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from telehub.domain.live import Event, EventDraft, EventType
from telehub.domain.readings import now_us
from telehub.hub import Hub

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])

EVENTS = "/api/v1/events"
PROBLEM = "urn:telehub:problem:"
COMMAND_FIELDS = {"command_id", "device_id", "batch_id", "name", "status", "result", "at"}


# --- reading the stream ------------------------------------------------------------------


@dataclass
class Block:
    """One block of a text/event-stream, up to its blank line."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        found = [v for k, v in self.fields if k == name]
        assert len(found) <= 1, self
        return found[0] if found else None

    @property
    def id(self) -> int | None:
        raw = self.value("id")
        return None if raw is None else int(raw)

    @property
    def event(self) -> str | None:
        return self.value("event")

    @property
    def data(self) -> Any:
        raw = self.value("data")
        return None if raw is None else orjson.loads(raw)


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def block(self) -> Block:
        block = Block()
        async with asyncio.timeout(5):
            async for line in self._lines:
                if line == "":
                    if block.fields or block.comments:
                        return block
                    continue
                if line.startswith(":"):
                    block.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    block.fields.append((name, value.removeprefix(" ")))
        raise AssertionError(f"the stream ended after {block}")

    async def events(self, count: int) -> list[Block]:
        """The next ``count`` events (blocks with fields); keep-alive comments are skipped."""
        out: list[Block] = []
        async with asyncio.timeout(10):
            while len(out) < count:
                block = await self.block()
                if block.fields:
                    out.append(block)
        return out

    async def event(self) -> Block:
        [block] = await self.events(1)
        return block

    async def events_through(self, last_id: int) -> list[Block]:
        """Events up to and including the one with ``last_id``."""
        out: list[Block] = []
        async with asyncio.timeout(10):
            while not out or out[-1].id is None or out[-1].id < last_id:
                out.append(await self.event())
        return out


@contextlib.asynccontextmanager
async def stream(
    http: httpx.AsyncClient,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Stream]:
    """An open feed, past its first block (``retry``), so the server has subscribed."""
    async with http.stream("GET", EVENTS, params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        sse = Stream(response)
        first = await sse.block()
        assert first.fields == [("retry", "3000")], first
        yield sse


def ids(blocks: list[Block]) -> list[int | None]:
    return [b.id for b in blocks]


def as_blocks(events: list[Event]) -> list[tuple[int, str, Any]]:
    return [(e.id, e.type.value, e.data) for e in events]


def seen(blocks: list[Block]) -> list[tuple[int | None, str | None, Any]]:
    return [(b.id, b.event, b.data) for b in blocks]


def increasing(values: list[int | None]) -> bool:
    numbers = [v for v in values if v is not None]
    return len(numbers) == len(values) and all(a < b for a, b in itertools.pairwise(numbers))


# --- producing events --------------------------------------------------------------------


async def add_device(hub: Hub, device_id: str) -> str:
    _, token = await hub.devices.create(device_id=device_id, name=None, attributes={})
    return token


async def flip(hub: Hub, device_id: str, n: int) -> list[Event]:
    """``n`` presence changes of one device, through the real service; the events logged."""
    before = await newest(hub)
    for _ in range(n):
        online = not (await hub.devices.get(device_id)).online
        assert await hub.devices.report_presence(device_id, online=online, live=True)
    return await hub.events.after(before)


async def newest(hub: Hub) -> int:
    bounds = await hub.events.bounds()
    return bounds[1] if bounds else 0


async def record(hub: Hub, drafts: list[EventDraft]) -> list[Event]:
    events = await hub.events.record(drafts)
    assert len(events) == len(drafts)
    return events


def padded(count: int) -> list[EventDraft]:
    """Events of ~1 KB each: a thousand are far more than a stalled connection buffers."""
    return [
        EventDraft(EventType.JOBS, "dev-1", now_us(), {"n": i, "pad": "x" * 1000})
        for i in range(count)
    ]
