"""Presence from the retained status topic and the device's last will."""

from __future__ import annotations

import asyncio
import signal

import pytest

from telehub.domain.devices import Device
from telehub.hub import Hub
from tests.mqtt.conftest import BridgeFactory
from tests.mqtt.support import Mosquitto, eventually, publish

pytestmark = pytest.mark.services

STATUS = "telehub/v1/devices/sensor-1/status"


async def device(hub: Hub) -> Device:
    return await hub.devices.get("sensor-1")


async def wait_online(hub: Hub, online: bool | None) -> Device:
    async def reached() -> bool:
        return (await device(hub)).online is online

    await eventually(reached, what=f"sensor-1 online={online}")
    return await device(hub)


async def test_status_sets_presence_and_last_seen(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    assert (await device(mqtt_hub)).online is None
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, STATUS, b"online")
        came_online = await wait_online(mqtt_hub, True)
        assert came_online.last_seen_us is not None
        assert came_online.presence_us is not None

        publish(mosquitto.port, STATUS, b"offline\n")
        went_offline = await wait_online(mqtt_hub, False)
    # "offline" is usually the broker speaking (a last will): no contact.
    assert went_offline.last_seen_us == came_online.last_seen_us
    assert went_offline.presence_us is not None
    assert went_offline.presence_us > came_online.presence_us


async def test_a_replayed_retained_status_keeps_the_time_presence_changed(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, STATUS, b"online", retain=True)
        first = await wait_online(mqtt_hub, True)
    # A new bridge (clean start) gets the retained copy when it subscribes.
    fresh = mqtt_hub.settings.model_copy(update={"mqtt_client_id": "another-bridge"})
    async with running_bridge(mqtt_hub, settings=fresh):
        received = mqtt_hub.metrics.mqtt_messages.labels(kind="status", outcome="accepted")

        async def replayed() -> bool:
            return received._value.get() >= 2

        await eventually(replayed, what="the retained status to be replayed")
    again = await device(mqtt_hub)
    assert (again.online, again.presence_us, again.last_seen_us) == (
        True,
        first.presence_us,
        first.last_seen_us,
    )


async def test_the_last_will_marks_a_dead_device_offline(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, STATUS, b"online", retain=True)
        await wait_online(mqtt_hub, True)
        # The device's connection, with its will registered, then killed.
        device_process = await asyncio.create_subprocess_exec(
            *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1"),
            *("-t", "telehub/v1/devices/sensor-1/commands/#", "-k", "5"),
            *("--will-topic", STATUS, "--will-payload", "offline", "--will-retain"),
            *("--will-qos", "1"),
        )
        await asyncio.sleep(0.5)  # connected, will registered
        device_process.send_signal(signal.SIGKILL)
        await device_process.wait()
        await wait_online(mqtt_hub, False)


@pytest.mark.parametrize("payload", [b"maybe", b"", b'{"status": "online"}'])
async def test_an_unknown_status_is_rejected(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory, payload: bytes
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, STATUS, payload)

        async def recorded() -> bool:
            return bool(await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None))

        await eventually(recorded, what="the rejection")
    [record] = await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None)
    assert (record.reason, record.device_id) == ("invalid-input", "sensor-1")
    assert (await device(mqtt_hub)).online is None
