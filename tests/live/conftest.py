"""Live-push fixtures: a real server (uvicorn on loopback) in front of the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telehub.runtime import Hub
from tests.live.support import LiveServer, live_server


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running
