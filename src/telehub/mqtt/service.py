"""MQTT as one part of a running hub: the embedded broker when configured, and the bridge."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from telehub.hub import Hub
from telehub.mqtt.bridge import MqttBridge
from telehub.mqtt.embedded import EmbeddedBroker
from telehub.mqtt.embedded_access import BRIDGE_USERNAME


@contextlib.asynccontextmanager
async def mqtt_running(hub: Hub) -> AsyncIterator[MqttBridge]:
    """Start the broker (if embedded) and the bridge; stop the bridge first on the way out,
    so in-flight messages commit before their broker goes away."""
    broker: EmbeddedBroker | None = None
    if hub.settings.mqtt_url == "embedded":
        broker = EmbeddedBroker(hub)
        await broker.start()
        bridge = MqttBridge(hub, username=BRIDGE_USERNAME, password=broker.bridge_secret)
        publishes = broker.publishes
        # Devices' messages are acknowledged by the broker itself, after commit.
        hub.metrics.mqtt_inflight.set_function(lambda: publishes.messages_in_flight)
    else:
        bridge = MqttBridge(hub)
    try:
        await bridge.start()
        try:
            yield bridge
        finally:
            await bridge.stop()
    finally:
        if broker is not None:
            await broker.stop()
