"""Live-push fixtures: a real server (uvicorn on loopback) in front of the hub.

Tests on the ``server`` fixture run on the memory bus and again on the Redis
bus (a channel prefix of their own): one WebSocket/SSE contract for both.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from telehub.config import Settings
from telehub.hub import Hub
from telehub.listeners import bind
from tests.live import support
from tests.live.support import LiveServer, live_server
from tests.services.redis_support import REDIS_URL, require_redis, unique_prefix


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def bus(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(make_settings: Callable[..., Settings], bus: str) -> Settings:
    if bus == "memory":
        return make_settings()
    await require_redis()
    return make_settings(bus_url=REDIS_URL, bus_channel_prefix=unique_prefix("live"))


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running


@pytest.fixture
def small_send_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started by live_server get a send buffer of a few KiB instead of megabytes,
    so a client that stops reading stalls the server's writes after a few hundred events."""

    def small(*args: Any, **kwargs: Any) -> socket.socket:
        sock = bind(*args, **kwargs)
        # Accepted sockets inherit it, and a set size turns off autotuning.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return sock

    monkeypatch.setattr(support, "bind", small)
