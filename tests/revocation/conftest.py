"""Revocation tests: hubs that trust a verified token for an hour.

With that cache, nothing but a revocation's announcement can end a session or
refuse a cached token within a test's deadlines: no cache expiry, and no
periodic recheck (which runs as often as the cache expires).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from telehub.config import Settings
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import mqtt_running
from tests.grpc.conftest import GrpcHub, serve_grpc
from tests.live.support import LiveServer, live_server
from tests.mqtt.support import free_port
from tests.revocation.mqtt_support import Wires
from tests.services.redis_support import REDIS_URL, require_redis, unique_prefix

CACHE_SECONDS = 3600.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def bus(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def configure(make_settings: Callable[..., Settings], bus: str) -> Callable[..., Settings]:
    """Settings of this test's database and bus, an hour's auth cache, and ``overrides``."""
    values: dict[str, object] = {"auth_cache_seconds": CACHE_SECONDS}
    if bus == "redis":
        await require_redis()
        values |= {"bus_url": REDIS_URL, "bus_channel_prefix": unique_prefix("revoke")}

    def factory(**overrides: object) -> Settings:
        return make_settings(**(values | overrides))

    return factory


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure()


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running


@pytest.fixture
async def grpc_hub(hub: Hub) -> AsyncIterator[GrpcHub]:
    async with serve_grpc(hub) as running:
        yield running


@pytest.fixture
async def broker(configure: Callable[..., Settings]) -> AsyncIterator[Hub]:
    """A hub with the embedded broker (and its bridge) running."""
    settings = configure(mqtt_url="embedded", mqtt_embedded_port=free_port())
    async with open_hub(settings) as hub, mqtt_running(hub):
        yield hub


@pytest.fixture
async def wires(broker: Hub) -> AsyncIterator[Wires]:
    opened = Wires(broker.settings.mqtt_embedded_port)
    try:
        yield opened
    finally:
        await opened.close()
