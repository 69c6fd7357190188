"""The embedded amqtt broker: device logins, per-device topics, the bridge inside."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

import pytest

from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import mqtt_running
from tests.mqtt.conftest import count
from tests.mqtt.embedded_support import embedded, mosquitto_pub, publish_as, reading
from tests.mqtt.support import eventually, telemetry_topic

__all__ = ["embedded"]  # the fixture


async def test_a_device_logs_in_with_its_token_and_its_telemetry_is_stored(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    for i in range(3):
        code, output = await publish_as(
            hub, tokens, "sensor-1", telemetry_topic("sensor-1"), reading(i)
        )
        assert code == 0, output

    async def stored() -> bool:
        return await count(hub, "sensor-1", "v") == 3

    await eventually(stored, what="3 readings through the embedded broker")


@pytest.mark.parametrize(
    "login",
    [
        pytest.param([], id="anonymous"),
        pytest.param(["-u", "sensor-1", "-P", "thd_wrong"], id="wrong-token"),
        pytest.param(["-u", "sensor-2", "-P", "<sensor-1>"], id="another-device-s-token"),
    ],
)
async def test_a_login_without_the_device_s_own_token_is_refused(
    embedded: tuple[Hub, dict[str, str]], login: list[str]
) -> None:
    hub, tokens = embedded
    login = [tokens["sensor-1"] if part == "<sensor-1>" else part for part in login]
    code, output = await mosquitto_pub(
        hub.settings.mqtt_embedded_port,
        "-q",
        "1",
        *login,
        "-t",
        telemetry_topic("sensor-2"),
        payload=reading(0),
    )
    assert code != 0
    assert "refused" in output.lower() or "not authori" in output.lower(), output
    assert await count(hub, "sensor-2", "v") == 0


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        (
            "telehub/v1/devices/sensor-2/telemetry",
            "device 'sensor-1' may not publish to 'telehub/v1/devices/sensor-2/telemetry' "
            "(another device's topic)",
        ),
        (
            "elsewhere/sensor-1/telemetry",
            "device 'sensor-1' may not publish to 'elsewhere/sensor-1/telemetry' "
            "(a topic outside telehub/v1/devices)",
        ),
        (
            "telehub/v1/devices/sensor-1/foo",
            "unknown topic suffix 'foo' (accepted: telemetry, state, status, "
            "commands/{command_id}/ack) under the device's own prefix telehub/v1/devices/sensor-1/",
        ),
        (
            "telehub/v1/devices/sensor-1/telemetry/extra",
            "unknown topic suffix 'telemetry/extra' (accepted: telemetry, state, status, "
            "commands/{command_id}/ack) under the device's own prefix telehub/v1/devices/sensor-1/",
        ),
    ],
    ids=["another-device", "outside", "unknown-suffix", "below-telemetry"],
)
async def test_a_publish_outside_the_device_s_own_topics_is_refused_and_recorded_saying_why(
    embedded: tuple[Hub, dict[str, str]], topic: str, why: str
) -> None:
    hub, tokens = embedded
    await publish_as(hub, tokens, "sensor-1", topic, reading(0))
    # Its own topic still works, after the refused one.
    await publish_as(hub, tokens, "sensor-1", telemetry_topic("sensor-1"), reading(1))

    async def settled() -> bool:
        return await count(hub, "sensor-1", "v") == 1

    await eventually(settled, what="sensor-1's own reading")
    assert await count(hub, "sensor-2", "v") == 0
    [record] = await hub.rejected.recent(limit=5, before_id=None, device_id=None)
    assert (record.transport, record.reason, record.device_id) == (
        "mqtt",
        "topic-not-allowed",
        "sensor-1",
    )
    assert record.detail.startswith(why + ": topic: ")


@pytest.mark.parametrize(
    ("action", "topic", "allowed"),
    [
        ("publish", "telehub/v1/devices/sensor-1/telemetry", True),
        ("publish", "telehub/v1/devices/sensor-1/state", True),
        ("publish", "telehub/v1/devices/sensor-1/status", True),
        ("publish", "telehub/v1/devices/sensor-1/commands/c1/ack", True),
        ("publish", "telehub/v1/devices/sensor-1/commands/c1", False),
        ("publish", "telehub/v1/devices/sensor-10/telemetry", False),
        ("publish", "elsewhere/sensor-1/telemetry", False),
        ("subscribe", "telehub/v1/devices/sensor-1/commands/+", True),
        ("subscribe", "telehub/v1/devices/sensor-1/commands/#", True),
        ("subscribe", "telehub/v1/devices/+/commands/+", False),
        ("subscribe", "telehub/v1/devices/sensor-1/telemetry", False),
        ("subscribe", "#", False),
        ("receive", "telehub/v1/devices/sensor-1/commands/c1", True),
        ("receive", "telehub/v1/devices/sensor-2/commands/c1", False),
    ],
)
async def test_device_topic_rules(
    embedded: tuple[Hub, dict[str, str]], action: str, topic: str, allowed: bool
) -> None:
    from telehub.mqtt.embedded_access import EmbeddedAccess

    hub, _ = embedded
    access = EmbeddedAccess(
        auth=hub.auth,
        gate=hub.ingest,
        bridge_secret="x",
        bridge_client_id=hub.settings.mqtt_client_id,
    )
    assert await access.allowed("sensor-1", topic, action) is allowed


async def test_a_taken_port_is_a_clear_error_naming_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(mqtt_url="embedded", mqtt_embedded_port=port)
        async with open_hub(settings) as hub:
            with pytest.raises(ConfigError, match="TELEHUB_MQTT_EMBEDDED_PORT"):
                async with mqtt_running(hub):
                    pass


async def test_commands_and_presence_through_the_embedded_broker(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    port = str(hub.settings.mqtt_embedded_port)
    login = ("-i", "sensor-1", "-u", "sensor-1", "-P", tokens["sensor-1"])
    code, output = await mosquitto_pub(
        hub.settings.mqtt_embedded_port,
        *("-q", "1", *login, "-r", "-t", "telehub/v1/devices/sensor-1/status"),
        payload=b"online",
    )
    assert code == 0, output

    async def online() -> bool:
        return (await hub.devices.get("sensor-1")).online is True

    await eventually(online, what="sensor-1 online")
    # One connection per client id: the device listens for commands after its
    # status went out, and acknowledges after it stopped listening.
    device = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv311", *login),
        *("-q", "1", "-t", "telehub/v1/devices/sensor-1/commands/+", "-C", "1", "-W", "10"),
        *("--will-topic", "telehub/v1/devices/sensor-1/status", "--will-payload", "offline"),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.3)  # the device's SUBSCRIBE is in place
    command = await hub.commands.send("sensor-1", name="blink", params={"times": 3}, ttl_s=30)
    received, _ = await asyncio.wait_for(device.communicate(), 15)
    message = json.loads(received)
    assert (message["id"], message["params"]) == (command.id, {"times": 3})

    code, output = await mosquitto_pub(
        hub.settings.mqtt_embedded_port,
        *("-q", "1", *login, "-t", f"telehub/v1/devices/sensor-1/commands/{command.id}/ack"),
        payload=b'{"status": "ok", "result": "blinked"}',
    )
    assert code == 0, output

    async def acked() -> bool:
        return (await hub.commands.get("sensor-1", command.id)).result == "blinked"

    await eventually(acked, what="the command to be acked")


async def test_a_device_never_receives_another_device_s_retained_status(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    """amqtt 0.12.1 replays retained messages matching anyone's subscription on connect."""
    hub, tokens = embedded
    status = "telehub/v1/devices/sensor-1/status"
    code, output = await mosquitto_pub(
        hub.settings.mqtt_embedded_port,
        *("-q", "1", "-i", "sensor-1", "-u", "sensor-1", "-P", tokens["sensor-1"]),
        *("-r", "-t", status),
        payload=b"online",
    )
    assert code == 0, output

    async def online() -> bool:
        return (await hub.devices.get("sensor-1")).online is True

    await eventually(online, what="sensor-1's retained status to reach the bridge")
    other = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(hub.settings.mqtt_embedded_port)),
        *("-V", "mqttv311", "-i", "sensor-2", "-u", "sensor-2", "-P", tokens["sensor-2"]),
        *("-q", "1"),
        *("-t", "telehub/v1/devices/sensor-2/commands/+", "-C", "1", "-W", "2"),
        stdout=asyncio.subprocess.PIPE,
    )
    received, _ = await asyncio.wait_for(other.communicate(), 15)
    assert received == b""


# A MAC address, a Tasmota topic, a Zigbee IEEE address, a name: each logs in as itself
# (client id and user name) and publishes under its own id, case kept.
REAL_IDS = ["aa:bb:cc:dd:ee:ff", "tasmota_1A2B3C", "0x00158d0001a2b3c4", "Greenhouse-2"]


async def test_devices_with_the_ids_real_devices_carry_publish_as_themselves(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    for device_id in REAL_IDS:
        _, tokens[device_id] = await hub.devices.create(
            device_id=device_id, name=None, attributes={}
        )
        code, output = await publish_as(
            hub, tokens, device_id, telemetry_topic(device_id), reading(0)
        )
        assert code == 0, output

    async def stored() -> bool:
        counts = [await count(hub, device_id, "v") for device_id in REAL_IDS]
        return counts == [1, 1, 1, 1]

    await eventually(stored, what="a reading of each device")
    assert await hub.rejected.recent(limit=5, before_id=None, device_id=None) == []


async def test_a_topic_naming_the_same_id_in_another_case_is_another_device_s(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    _, tokens["Greenhouse-2"] = await hub.devices.create(
        device_id="Greenhouse-2", name=None, attributes={}
    )
    await publish_as(hub, tokens, "Greenhouse-2", telemetry_topic("greenhouse-2"), reading(0))

    async def recorded() -> bool:
        return bool(await hub.rejected.recent(limit=5, before_id=None, device_id=None))

    await eventually(recorded, what="the refusal")
    [record] = await hub.rejected.recent(limit=5, before_id=None, device_id=None)
    assert "(another device's topic)" in record.detail
