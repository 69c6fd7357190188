"""The embedded broker as tests run it: a hub with it inside, devices and their tokens,
and the C clients publishing to it as devices."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable

import pytest

from telehub.config import Settings
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import mqtt_running
from tests.conftest import require_service
from tests.mqtt.support import free_port

BASE_MS = 1_767_225_600_000


@pytest.fixture
async def embedded(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Hub, dict[str, str]]]:
    """A hub with the embedded broker and bridge running; yields it and device tokens."""
    settings = make_settings(mqtt_url="embedded", mqtt_embedded_port=free_port())
    async with open_hub(settings) as hub:
        tokens = {}
        for device_id in ("sensor-1", "sensor-2"):
            _, tokens[device_id] = await hub.devices.create(
                device_id=device_id, name=None, attributes={}
            )
        async with mqtt_running(hub):
            yield hub, tokens


async def mosquitto_pub(port: int, *args: str, payload: bytes) -> tuple[int, str]:
    """The C client, speaking MQTT 3.1.1 (all amqtt understands)."""
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-V",
        "mqttv311",
        "-s",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(payload), 30)
    return process.returncode or 0, output.decode()


async def publish_as(
    hub: Hub, tokens: dict[str, str], device_id: str, topic: str, payload: bytes
) -> tuple[int, str]:
    """Publish at QoS 1, logged in as ``device_id`` with its token."""
    login = ("-i", device_id, "-u", device_id, "-P", tokens[device_id])
    return await mosquitto_pub(
        hub.settings.mqtt_embedded_port, "-q", "1", *login, "-t", topic, payload=payload
    )


def reading(i: int) -> bytes:
    return json.dumps({"ts": BASE_MS + i * 1000, "values": {"v": i}}).encode()
