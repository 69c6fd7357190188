"""Commands over a real Mosquitto: delivered at most once, acked, failed, never late,
and sent only to a device that reported online.

The device is ``mosquitto_sub`` with a persistent session (``-c -i``), as a
real device keeps one so that commands reach it after a short disconnect; its
``online`` status is a retained publish of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from telehub.config import Settings
from telehub.domain.commands import Command, CommandStatus
from telehub.domain.readings import now_us
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import bridge_for
from tests.mqtt.conftest import BridgeFactory
from tests.mqtt.support import Mosquitto, eventually, publish

pytestmark = pytest.mark.services

COMMANDS = "telehub/v1/devices/sensor-1/commands/+"


async def register_device_session(port: int, client_id: str) -> None:
    """Connect once with a persistent session and subscribe, so the broker queues for it."""
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5"),
        *("-c", "-i", client_id, "-x", "600", "-q", "1", "-t", COMMANDS, "-E"),
    )
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def receive(port: int, client_id: str, *, count: int, wait_s: int) -> list[dict[str, Any]]:
    """Commands the device gets in its session (at most ``count``, for at most ``wait_s``)."""
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5"),
        *("-c", "-i", client_id, "-x", "600", "-q", "1", "-t", COMMANDS),
        *("-C", str(count), "-W", str(wait_s), "-F", "%t %p"),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), wait_s + 10)
    received = []
    for line in output.decode().splitlines():
        topic, _, payload = line.partition(" ")
        message = json.loads(payload)
        assert topic == f"telehub/v1/devices/sensor-1/commands/{message['id']}"
        received.append(message)
    return received


async def device_online(hub: Hub, port: int) -> None:
    """The device reports online (retained, as a real one does) and a bridge stores it."""
    publish(port, "telehub/v1/devices/sensor-1/status", b"online", retain=True)

    async def online() -> bool:
        return (await hub.devices.get("sensor-1")).online is True

    await eventually(online, what="sensor-1 online")


def ack(port: int, command_id: str, body: dict[str, Any]) -> None:
    topic = f"telehub/v1/devices/sensor-1/commands/{command_id}/ack"
    publish(port, topic, json.dumps(body).encode())


async def status_of(hub: Hub, command: Command, expected: CommandStatus) -> Command:
    async def reached() -> bool:
        return (await hub.commands.get("sensor-1", command.id)).status is expected

    await eventually(reached, what=f"command {command.id} to be {expected.value}")
    return await hub.commands.get("sensor-1", command.id)


async def test_a_command_reaches_the_device_once_and_its_ack_completes_it(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    await register_device_session(mosquitto.port, "sensor-1-device")
    async with running_bridge(mqtt_hub):
        await device_online(mqtt_hub, mosquitto.port)
        command = await mqtt_hub.commands.send(
            "sensor-1", name="set_interval", params={"seconds": 30}, ttl_s=60
        )
        [message] = await receive(mosquitto.port, "sensor-1-device", count=1, wait_s=10)
        assert message["id"] == command.id
        assert (message["name"], message["params"]) == ("set_interval", {"seconds": 30})
        assert message["expires_at"].endswith("Z")
        sent = await mqtt_hub.commands.get("sensor-1", command.id)
        assert sent.status is CommandStatus.SENT
        assert sent.sent_us is not None

        ack(mosquitto.port, command.id, {"status": "ok", "result": {"interval": 30}})
        done = await status_of(mqtt_hub, command, CommandStatus.ACKED)
        assert done.result == {"interval": 30}
        assert done.done_us is not None
    # Nothing more was queued for the device: it got the command once.
    assert await receive(mosquitto.port, "sensor-1-device", count=1, wait_s=1) == []


async def test_an_error_ack_fails_the_command(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    await register_device_session(mosquitto.port, "sensor-1-device")
    async with running_bridge(mqtt_hub):
        await device_online(mqtt_hub, mosquitto.port)
        command = await mqtt_hub.commands.send("sensor-1", name="reboot", params={}, ttl_s=60)
        await receive(mosquitto.port, "sensor-1-device", count=1, wait_s=10)
        ack(mosquitto.port, command.id, {"status": "error", "result": "busy"})
        failed = await status_of(mqtt_hub, command, CommandStatus.FAILED)
    assert failed.result == "busy"


async def test_an_expired_command_is_never_delivered(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    await register_device_session(mosquitto.port, "sensor-1-device")
    async with running_bridge(mqtt_hub):
        # Sent while the device is reported online but not connected (it left without
        # its will): the broker queues it with an expiry that ends no later than the
        # command's.
        await device_online(mqtt_hub, mosquitto.port)
        queued = await mqtt_hub.commands.send("sensor-1", name="reboot", params={}, ttl_s=5)
        await status_of(mqtt_hub, queued, CommandStatus.SENT)
        await asyncio.sleep(max(0.0, (queued.expires_us - now_us()) / 1e6))
        assert await receive(mosquitto.port, "sensor-1-device", count=1, wait_s=2) == []
        expired = await mqtt_hub.commands.get("sensor-1", queued.id)
        assert expired.status is CommandStatus.EXPIRED
        # A late ack cannot revive it; it is recorded as rejected.
        ack(mosquitto.port, queued.id, {"status": "ok"})

        async def recorded() -> bool:
            found = await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None)
            return bool(found) and found[0].reason == "command-closed"

        await eventually(recorded, what="the late ack to be rejected")
    assert (await mqtt_hub.commands.get("sensor-1", queued.id)).status is CommandStatus.EXPIRED


async def test_a_command_that_expires_before_any_bridge_runs_is_never_sent(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    await register_device_session(mosquitto.port, "sensor-1-device")
    late = await mqtt_hub.commands.send("sensor-1", name="reboot", params={}, ttl_s=5)
    # Its time runs out (as seen from 10 s on) before any bridge is there.
    [expired] = await mqtt_hub.store.commands.expire(now_us=now_us() + 10_000_000)
    assert expired.id == late.id
    async with running_bridge(mqtt_hub):
        assert await receive(mosquitto.port, "sensor-1-device", count=1, wait_s=2) == []
    expired = await mqtt_hub.commands.get("sensor-1", late.id)
    assert (expired.status, expired.sent_us) == (CommandStatus.EXPIRED, None)


@asynccontextmanager
async def bridges(settings: Settings, *client_ids: str) -> AsyncIterator[list[Hub]]:
    """Hubs on one database, each with its own bridge in one shared group."""
    async with contextlib.AsyncExitStack() as stack:
        hubs = []
        for client_id in client_ids:
            own = settings.model_copy(
                update={"mqtt_client_id": client_id, "mqtt_shared_group": "telehub"}
            )
            hub = await stack.enter_async_context(open_hub(own, migrate=False))
            bridge = bridge_for(hub)
            await bridge.start()
            stack.push_async_callback(bridge.stop)
            hubs.append(hub)
        yield hubs


async def test_commands_queued_by_another_process_go_out_once_with_two_bridges(
    mqtt_settings: Settings, mqtt_hub: Hub, mosquitto: Mosquitto
) -> None:
    """mqtt_hub plays `telehub api` (no bridge); two bridges race to send its commands."""
    await register_device_session(mosquitto.port, "sensor-1-device")
    async with bridges(mqtt_settings, "bridge-1", "bridge-2") as hubs:
        await device_online(mqtt_hub, mosquitto.port)
        queued = [
            await mqtt_hub.commands.send("sensor-1", name="step", params={"n": i}, ttl_s=60)
            for i in range(20)
        ]
        received = await receive(mosquitto.port, "sensor-1-device", count=21, wait_s=4)
        sent = [hub.metrics.mqtt_commands_sent._value.get() for hub in hubs]
    assert sorted(m["id"] for m in received) == sorted(c.id for c in queued)
    assert sum(sent) == 20


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"status": "done"}', "invalid-input", id="bad-status"),
        pytest.param(b"not json", "invalid-input", id="not-json"),
        pytest.param(b'{"status": "ok"}', "unknown-command", id="unknown-command"),
    ],
)
async def test_bad_acks_are_recorded(
    mqtt_hub: Hub,
    mosquitto: Mosquitto,
    running_bridge: BridgeFactory,
    body: bytes,
    reason: str,
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, "telehub/v1/devices/sensor-1/commands/cmd-0000/ack", body)

        async def recorded() -> bool:
            return bool(await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None))

        await eventually(recorded, what="the rejected ack")
    [record] = await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None)
    assert (record.reason, record.device_id) == (reason, "sensor-1")
