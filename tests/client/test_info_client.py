"""``Client.info()`` and ``AsyncClient.info()``: where the hub's listeners are, as one model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from telehub.api.info_schemas import HubInfo
from telehub.client import AsyncClient, Client
from telehub.config import Settings
from telehub.hub import open_hub
from tests.live.support import live_server


async def test_both_clients_read_the_hubs_listeners(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(mqtt_url="embedded", mqtt_embedded_port=18841, grpc_port=15052)
    async with open_hub(settings) as hub, live_server(hub) as server:
        async with AsyncClient(server.base) as aio:  # no token needed
            got = await aio.info()

        def sync() -> HubInfo:
            with Client(server.base) as client:
                return client.info()

        assert await asyncio.to_thread(sync) == got
    assert got.mqtt.urls == ["mqtt://127.0.0.1:18841"]
    assert got.grpc.target == "127.0.0.1:15052"
    assert got.limits.max_body_bytes == settings.max_body_bytes
