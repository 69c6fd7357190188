"""The bridge notices when the broker dropped its subscriptions while the connection
stayed up, says so in its metrics, and subscribes again within seconds."""

from __future__ import annotations

from collections.abc import Callable

from telehub.config import Settings
from telehub.hub import open_hub
from telehub.mqtt.embedded_access import BRIDGE_USERNAME
from telehub.mqtt.service import bridge_for, embedded_broker_for
from tests.faults.test_embedded_identity import presence_after_will
from tests.mqtt.support import eventually, free_port


async def test_lost_subscriptions_are_noticed_reported_and_restored(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        mqtt_url="embedded", mqtt_embedded_port=free_port(), mqtt_heartbeat_seconds=0.2
    )
    async with open_hub(settings) as hub:
        _, token = await hub.devices.create(device_id="sensor-1", name=None, attributes={})
        broker = embedded_broker_for(hub)
        await broker.start()
        bridge = bridge_for(hub, username=BRIDGE_USERNAME, password=broker.bridge_secret)
        await bridge.start()
        metrics = hub.metrics
        try:
            assert metrics.mqtt_subscribed._value.get() == 1
            assert hub.components.snapshot() == {"mqtt": "subscribed"}  # what /readyz shows
            # The fault: the broker forgets the bridge's subscriptions, connection intact.
            amqtt = broker._broker
            session, _ = amqtt._sessions[settings.mqtt_client_id]
            await amqtt._del_all_subscriptions(session)

            async def noticed() -> bool:
                return metrics.mqtt_resubscribes._value.get() >= 1

            await eventually(noticed, what="the bridge to notice its lost subscriptions")
            assert metrics.mqtt_connected._value.get() == 1  # connected all along

            async def restored() -> bool:
                return metrics.mqtt_subscribed._value.get() == 1

            await eventually(restored, what="the heartbeat back after subscribing again")
            assert hub.components.snapshot() == {"mqtt": "subscribed"}
            # And what needs the subscriptions works again: a will reaches the hub.
            await presence_after_will(hub, token)
        finally:
            await bridge.stop()
            await broker.stop()
