"""What a command's status says, over each broker: queued while its device is offline,
sent when handed over, delivered when the device's PUBACK is seen, then acked.

The device never connected at first; later it subscribes with a persistent
session, reports ``online``, and takes the command. Over the embedded broker
the hub sees its PUBACK (delivered); over Mosquitto only the answer (acked).
"""

from __future__ import annotations

import asyncio

import pytest

from telehub.domain.commands import Command, CommandStatus
from telehub.domain.readings import now_us
from telehub.hub import Hub
from tests.mqtt.conftest import BridgeFactory
from tests.mqtt.embedded_support import embedded, mosquitto_pub
from tests.mqtt.support import Mosquitto, eventually, publish

__all__ = ["embedded"]  # the fixture

pytestmark = pytest.mark.services

ROOT = "telehub/v1/devices/sensor-1"


async def reaches(hub: Hub, command: Command, expected: CommandStatus) -> Command:
    async def reached() -> bool:
        return (await hub.commands.get("sensor-1", command.id)).status is expected

    await eventually(reached, what=f"command {command.id} to be {expected.value}")
    return await hub.commands.get("sensor-1", command.id)


async def expires_unsent(hub: Hub, command: Command) -> None:
    """Its time runs out while it waits: expired, from queued, never sent."""
    await asyncio.sleep(max(0.0, (command.expires_us - now_us()) / 1e6))
    expired = await hub.commands.get("sensor-1", command.id)
    assert (expired.status, expired.sent_us) == (CommandStatus.EXPIRED, None)
    assert hub.metrics.mqtt_commands_sent._value.get() == 0


async def mosquitto_sub(port: int, *args: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *args),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode in (0, 27), output  # 27: -W timed out
    return output


# --- the embedded broker -------------------------------------------------------------------


def logged_in(tokens: dict[str, str]) -> tuple[str, ...]:
    """sensor-1 with a persistent session (-c), MQTT 3.1.1 (all amqtt speaks)."""
    return ("-V", "mqttv311", "-c", "-i", "sensor-1", "-u", "sensor-1", "-P", tokens["sensor-1"])


async def test_embedded_a_command_to_a_device_that_never_connected_stays_queued_and_expires(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, _ = embedded

    command = await hub.commands.send("sensor-1", name="reboot", params={}, ttl_s=5)

    assert command.status is CommandStatus.QUEUED
    await expires_unsent(hub, command)


async def test_embedded_a_device_coming_online_gets_its_queued_command_delivered_then_acked(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    port = hub.settings.mqtt_embedded_port
    command = await hub.commands.send("sensor-1", name="blink", params={"n": 2}, ttl_s=60)
    assert command.status is CommandStatus.QUEUED
    # The device subscribes in a persistent session and leaves: the broker keeps both.
    await mosquitto_sub(port, *logged_in(tokens), "-q", "1", "-t", f"{ROOT}/commands/+", "-E")
    assert (await hub.commands.get("sensor-1", command.id)).status is CommandStatus.QUEUED

    code, output = await mosquitto_pub(
        port, *logged_in(tokens), "-q", "1", "-r", "-t", f"{ROOT}/status", payload=b"online"
    )
    assert code == 0, output
    sent = await reaches(hub, command, CommandStatus.SENT)  # into its session, not yet read
    assert sent.delivered_us is None
    received = await mosquitto_sub(
        port, *logged_in(tokens), "-q", "1", "-t", f"{ROOT}/commands/+", "-C", "1", "-W", "10"
    )
    delivered = await reaches(hub, command, CommandStatus.DELIVERED)
    code, output = await mosquitto_pub(
        port,
        *logged_in(tokens),
        *("-q", "1", "-t", f"{ROOT}/commands/{command.id}/ack"),
        payload=b'{"status": "ok", "result": "blinked"}',
    )
    assert code == 0, output
    acked = await reaches(hub, command, CommandStatus.ACKED)

    assert command.id.encode() in received
    assert sent.sent_us is not None
    assert delivered.delivered_us is not None
    assert sent.sent_us <= delivered.delivered_us
    assert (acked.result, acked.delivered_us) == ("blinked", delivered.delivered_us)


# --- Mosquitto, through the bridge -----------------------------------------------------------


def session(client_id: str) -> tuple[str, ...]:
    return ("-V", "mqttv5", "-c", "-i", client_id, "-x", "600", "-q", "1")


async def test_bridge_a_command_to_a_device_that_never_connected_stays_queued_and_expires(
    mqtt_hub: Hub, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        command = await mqtt_hub.commands.send("sensor-1", name="reboot", params={}, ttl_s=5)

        assert command.status is CommandStatus.QUEUED
        await expires_unsent(mqtt_hub, command)


async def test_bridge_a_device_coming_online_gets_its_queued_command_then_acks_it(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    port = mosquitto.port
    await mosquitto_sub(port, *session("sensor-1-device"), "-t", f"{ROOT}/commands/+", "-E")
    async with running_bridge(mqtt_hub):
        command = await mqtt_hub.commands.send("sensor-1", name="blink", params={}, ttl_s=60)
        assert command.status is CommandStatus.QUEUED
        # Offline: nothing is published to its session.
        nothing = await mosquitto_sub(
            port, *session("sensor-1-device"), "-t", f"{ROOT}/commands/+", "-C", "1", "-W", "1"
        )
        assert nothing == b""

        publish(port, f"{ROOT}/status", b"online", retain=True)
        sent = await reaches(mqtt_hub, command, CommandStatus.SENT)
        received = await mosquitto_sub(
            port, *session("sensor-1-device"), "-t", f"{ROOT}/commands/+", "-C", "1", "-W", "10"
        )
        publish(port, f"{ROOT}/commands/{command.id}/ack", b'{"status": "ok"}')
        acked = await reaches(mqtt_hub, command, CommandStatus.ACKED)

    assert command.id.encode() in received
    # An external broker does not tell the device's PUBACK: never delivered, only sent.
    assert (sent.delivered_us, acked.delivered_us) == (None, None)
    assert acked.sent_us == sent.sent_us
