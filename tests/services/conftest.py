"""Fixtures of the bus tests: buses of each kind on a fresh channel prefix, a raw client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.services.bus_support import Opener, buses
from tests.services.redis_support import (
    REDIS_URL,
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_bus(kind: str) -> AsyncIterator[Opener]:
    async with buses(kind) as opener:
        yield opener


@pytest.fixture
async def redis_open_bus() -> AsyncIterator[Opener]:
    """Like ``open_bus``, for the tests that only mean something on Redis."""
    async with buses("redis") as opener:
        yield opener


@pytest.fixture
async def raw_redis() -> AsyncIterator[Redis]:
    """A plain redis-py client, for what no bus would ever send."""
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()
