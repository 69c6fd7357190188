"""Fixtures of the MQTT tests: our own Mosquitto, a hub with devices, a running bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from telehub.config import Settings
from telehub.core.ports import Aggregate, SeriesRange
from telehub.hub import Hub, open_hub
from telehub.mqtt.bridge import MqttBridge
from telehub.mqtt.service import bridge_for
from tests.mqtt.dynsec_broker import Broker, run_dynsec_broker
from tests.mqtt.support import Mosquitto

DEVICES = ("sensor-1", "sensor-2")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mqtt_settings(make_settings: Callable[..., Settings], mosquitto: Mosquitto) -> Settings:
    return make_settings(mqtt_url=mosquitto.url, mqtt_session_expiry_seconds=600)


@pytest.fixture
async def mqtt_hub(mqtt_settings: Settings) -> AsyncIterator[Hub]:
    async with open_hub(mqtt_settings) as hub:
        for device_id in DEVICES:
            await hub.devices.create(device_id=device_id, name=None, attributes={})
        yield hub


BridgeFactory = Callable[..., AbstractAsyncContextManager[MqttBridge]]


@pytest.fixture
def running_bridge() -> BridgeFactory:
    """``async with running_bridge(hub) as bridge``: connected and subscribed."""

    @asynccontextmanager
    async def run(hub: Hub, settings: Settings | None = None) -> AsyncIterator[MqttBridge]:
        bridge = bridge_for(hub, settings=settings)
        await bridge.start()
        try:
            yield bridge
        finally:
            await bridge.stop()

    return run


async def count(hub: Hub, device_id: str, metric: str) -> int:
    """How many readings of one series are stored (one bucket spanning all time)."""
    series = SeriesRange(device_id, metric, 0, 2**62, 1)
    buckets = await hub.store.readings.buckets(series, width_us=2**62, agg=Aggregate.COUNT)
    return int(buckets[0].value) if buckets else 0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Mosquitto with dynamic security for the whole module (it takes ~0.2 s to start)."""
    yield from run_dynsec_broker(tmp_path_factory)
