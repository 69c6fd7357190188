"""A retained telemetry message is stored once: the broker's replays at every
bridge reconnect are recorded, not stored again (without a timestamp each
replay used to become a new point)."""

from __future__ import annotations

import pytest

from telehub.hub import Hub
from tests.mqtt.conftest import BridgeFactory, count
from tests.mqtt.support import Mosquitto, eventually, publish, telemetry_topic

pytestmark = pytest.mark.services


async def test_replays_of_retained_telemetry_are_recorded_not_stored(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, telemetry_topic("sensor-1"), b'{"values": {"v": 1}}', retain=True)

        async def stored() -> bool:
            return await count(mqtt_hub, "sensor-1", "v") == 1

        await eventually(stored, what="the retained reading, stored as it was published")
    for reconnect in range(1, 3):
        async with running_bridge(mqtt_hub):

            async def replayed(n: int = reconnect) -> bool:
                records = await mqtt_hub.rejected.recent(
                    limit=10, before_id=None, device_id="sensor-1"
                )
                return [r.reason for r in records] == ["retained-replay"] * n

            await eventually(replayed, what=f"replay {reconnect} recorded")
    assert await count(mqtt_hub, "sensor-1", "v") == 1
