"""The REST SDKs follow a query's pages to the end: ``query`` is one page, marked when
it is cut; ``query_pages`` yields every page and ``query_all`` the whole answer, the
same on ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehub.api.schemas import SeriesOut
from telehub.client import AsyncClient, Client, ValidationFailed
from tests.live.support import LiveServer, live_server

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MANY = 2_300
RANGE = {"start": T0, "end": T0 + timedelta(days=1)}


@pytest.fixture
async def server(hub: Any) -> AsyncIterator[LiveServer]:
    """dev-1 with two metrics measured together (the same timestamps) every second."""
    async with live_server(hub) as running, AsyncClient(running.base, token=running.admin) as c:
        await c.create_device("dev-1")
        messages = [
            {"ts": (T0 + timedelta(seconds=s)).isoformat(), "values": {"a": s, "b": -s}}
            for s in range(MANY)
        ]
        for start in range(0, MANY, 1000):
            await c.send_telemetry("dev-1", messages[start : start + 1000])
        yield running


def _pairs(series: SeriesOut, metric: str) -> list[tuple[datetime, float]]:
    return [(p.ts, p.value) for p in series.series[metric]]


WANT = {
    "a": [(T0 + timedelta(seconds=s), float(s)) for s in range(MANY)],
    "b": [(T0 + timedelta(seconds=s), float(-s)) for s in range(MANY)],
}


async def test_both_clients_follow_every_page(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as aio:
        first = await aio.query("dev-1", **RANGE)
        pages = [page async for page in aio.query_pages("dev-1", **RANGE)]
        whole = await aio.query_all("dev-1", **RANGE, page_size=700)
        newest = await aio.query_all("dev-1", metrics=["a"], order="desc", **RANGE)

    def blocking() -> tuple[Any, ...]:
        with Client(server.base, token=server.admin) as client:
            return (
                client.query("dev-1", **RANGE),
                list(client.query_pages("dev-1", **RANGE)),
                client.query_all("dev-1", **RANGE, page_size=700),
                client.query_all("dev-1", metrics=["a"], order="desc", **RANGE),
            )

    got = await asyncio.to_thread(blocking)

    assert got == (first, pages, whole, newest)
    assert {m: len(p) for m, p in first.series.items()} == {"a": 1000, "b": 1000}
    assert (first.truncated, first.next is not None) == (["a", "b"], True)
    assert len(pages) == 3
    assert (pages[-1].truncated, pages[-1].next) == ([], None)
    for metric, want in WANT.items():
        assert [pair for page in pages for pair in _pairs(page, metric)] == want
        assert _pairs(whole, metric) == want
    assert (whole.truncated, whole.next) == ([], None)
    assert _pairs(newest, "a") == WANT["a"][::-1]


async def test_a_page_size_above_the_maximum_is_refused_alike(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as aio:
        with pytest.raises(ValidationFailed) as from_async:
            await aio.query_all("dev-1", page_size=10_001)

    def blocking() -> ValidationFailed:
        with Client(server.base, token=server.admin) as client:
            with pytest.raises(ValidationFailed) as caught:
                client.query_all("dev-1", page_size=10_001)
            return caught.value

    from_sync = await asyncio.to_thread(blocking)
    assert from_sync.errors == from_async.value.errors
    assert [e.get("parameter") for e in from_sync.errors] == ["limit"]
