"""The Mosquitto settings the repository ships (deploy/mosquitto/telehub.conf) do what
its comments say: an oversized packet is refused from its header and holds nobody up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from telehub.hub import Hub
from tests.faults.mqtt_wire import Wire, varint
from tests.mqtt.conftest import BridgeFactory, count
from tests.mqtt.support import Mosquitto, eventually, publish, telemetry_topic

pytestmark = pytest.mark.services

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "telehub.conf"
LIMITS = ("max_packet_size", "message_size_limit")


def shipped(option: str) -> str:
    for line in SHIPPED.read_text().splitlines():
        if line.split(maxsplit=1)[:1] == [option]:
            return line
    raise AssertionError(f"{SHIPPED} has no {option}")


def test_the_shipped_config_is_lossless_and_bounded() -> None:
    assert shipped("max_queued_messages") == "max_queued_messages 0"
    assert shipped("persistence") == "persistence true"
    assert shipped("allow_anonymous") == "allow_anonymous false"
    assert int(shipped("message_size_limit").split()[1]) == 1024 * 1024  # max_body_bytes
    # The whole packet: the payload, the longest topic and its length, packet id, header.
    assert int(shipped("max_packet_size").split()[1]) == 1024 * 1024 + 65_535 + 2 + 2 + 1 + 4


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:  # tests/mqtt's, with the shipped limits
    broker = Mosquitto(tmp_path / "broker", extra_config="".join(shipped(o) + "\n" for o in LIMITS))
    broker.start()
    yield broker
    broker.stop()


async def test_an_oversized_publish_is_refused_and_delays_nobody(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        attacker = await Wire.open(mosquitto.port)
        assert await attacker.login("attacker", "sensor-1", "x") == 0
        topic = telemetry_topic("sensor-1").encode()
        head = bytes([0x32]) + varint(200_000_000) + len(topic).to_bytes(2, "big") + topic
        await attacker.send(head + b"\x00\x01" + b"x" * 65_536)
        assert await asyncio.wait_for(attacker.read(), 10) is None  # disconnected
        await attacker.close()
        publish(mosquitto.port, telemetry_topic("sensor-2"), b'{"values": {"v": 1}}')

        async def stored() -> bool:
            return await count(mqtt_hub, "sensor-2", "v") == 1

        await eventually(stored, what="another device's reading")
    assert await count(mqtt_hub, "sensor-1", "v") == 0
    # Mosquitto records the refusal in its log.
    assert "Client attacker disconnected due to oversize packet." in mosquitto.log.read_text()
