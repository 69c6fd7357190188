"""MQTT as one part of a running hub: the embedded broker when configured, and the bridge.

The one MQTT module that knows the ``Hub``: it hands the bridge and the
broker the core services each uses, so neither can reach anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from telehub.config import Settings
from telehub.hub import Hub
from telehub.mqtt.bridge import MqttBridge
from telehub.mqtt.embedded import EmbeddedBroker, EmbeddedPorts
from telehub.mqtt.embedded_access import BRIDGE_USERNAME
from telehub.mqtt.message_handler import MqttInbound


def inbound_for(hub: Hub) -> MqttInbound:
    """What stores or rejects device messages, for the bridge and the embedded broker."""
    return MqttInbound(
        gate=hub.ingest, devices=hub.devices, commands=hub.commands, metrics=hub.metrics
    )


def bridge_for(
    hub: Hub,
    *,
    settings: Settings | None = None,
    username: str | None = None,
    password: str | None = None,
) -> MqttBridge:
    """A bridge feeding this hub; ``settings`` default to the hub's (a test may point one
    bridge of a hub at another broker)."""
    return MqttBridge(
        settings=settings or hub.settings,
        inbound=inbound_for(hub),
        commands=hub.commands,
        metrics=hub.metrics,
        states=hub.components,
        username=username,
        password=password,
    )


def embedded_broker_for(hub: Hub) -> EmbeddedBroker:
    return EmbeddedBroker(
        EmbeddedPorts(
            settings=hub.settings,
            inbound=inbound_for(hub),
            auth=hub.auth,
            gate=hub.ingest,
            sessions=hub.sessions,
            commands=hub.commands,
            metrics=hub.metrics,
        )
    )


@contextlib.asynccontextmanager
async def mqtt_running(hub: Hub) -> AsyncIterator[MqttBridge]:
    """Start the broker (if embedded) and the bridge; stop the bridge first on the way out,
    so in-flight messages commit before their broker goes away."""
    broker: EmbeddedBroker | None = None
    if hub.settings.mqtt_url == "embedded":
        broker = embedded_broker_for(hub)
        await broker.start()
        bridge = bridge_for(hub, username=BRIDGE_USERNAME, password=broker.bridge_secret)
        publishes = broker.publishes
        # Devices' messages are acknowledged by the broker itself, after commit.
        hub.metrics.mqtt_inflight.set_function(lambda: publishes.messages_in_flight)
    else:
        bridge = bridge_for(hub)
    try:
        await bridge.start()
        try:
            yield bridge
        finally:
            await bridge.stop()
    finally:
        if broker is not None:
            await broker.stop()
