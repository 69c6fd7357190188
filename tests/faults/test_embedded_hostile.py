"""Hostile MQTT clients against the embedded broker: each is refused, recorded, and
nobody else is held up or loses anything."""

from __future__ import annotations

import asyncio

import pytest

from telehub.hub import Hub
from tests.faults.mqtt_wire import PUBACK, Wire, packet, publish, varint
from tests.mqtt.conftest import count
from tests.mqtt.embedded_support import reading
from tests.mqtt.support import eventually, telemetry_topic

READ_LIMIT_S = 10


async def closed_by_broker(wire: Wire) -> bool:
    """True when the broker ends the connection (read returns None) within the limit."""
    answer = await asyncio.wait_for(wire.read(), READ_LIMIT_S)
    return answer is None


async def rejected_reasons(hub: Hub) -> list[tuple[str | None, str]]:
    records = await hub.rejected.recent(limit=20, before_id=None, device_id=None)
    return [(r.device_id, r.reason) for r in records]


async def stores_a_reading_of(hub: Hub, token: str, device_id: str, i: int) -> None:
    """A well-behaved device publishes and gets its PUBACK, and the reading is stored."""
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login(device_id, device_id, token) == 0
    await wire.send(publish(telemetry_topic(device_id), reading(i), qos=1, packet_id=1))
    answer = await asyncio.wait_for(wire.read(), READ_LIMIT_S)
    assert answer is not None
    assert answer.kind == PUBACK
    await wire.close()


async def test_an_oversized_packet_is_refused_before_its_body_is_read(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    attacker = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await attacker.login("sensor-1", "sensor-1", tokens["sensor-1"]) == 0
    # Announce a 200 MB PUBLISH and send only its first bytes: the broker must
    # not wait for (or buffer) the rest before refusing it.
    topic = telemetry_topic("sensor-1").encode()
    head = bytes([0x32]) + varint(200_000_000) + len(topic).to_bytes(2, "big") + topic
    await attacker.send(head + b"\x00\x01" + b"x" * 65_536)
    assert await closed_by_broker(attacker)
    await attacker.close()
    await stores_a_reading_of(hub, tokens["sensor-2"], "sensor-2", 1)
    assert await count(hub, "sensor-2", "v") == 1

    async def recorded() -> bool:
        return ("sensor-1", "payload-too-large") in await rejected_reasons(hub)

    await eventually(recorded, what="the refused packet in the rejected record")


async def test_a_publish_to_a_wildcard_topic_ends_the_connection_and_its_payload_is_no_packet(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    """MQTT-3.3.2-2. amqtt read the topic, refused it, and parsed the payload as
    further packets: a payload holding a whole PUBLISH got that one stored."""
    hub, tokens = embedded
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"]) == 0
    smuggled = publish(telemetry_topic("sensor-1"), reading(1), qos=1, packet_id=2)
    await wire.send(publish("telehub/v1/devices/sensor-1/+", smuggled, qos=1, packet_id=1))
    assert await closed_by_broker(wire)
    await wire.close()
    assert await count(hub, "sensor-1", "v") == 0

    async def recorded() -> bool:
        return ("sensor-1", "protocol-violation") in await rejected_reasons(hub)

    await eventually(recorded, what="the violation in the rejected record")


@pytest.mark.parametrize("topic", ["telehub/v1/devices/#", "", "telehub/v1/devices/a\x00b"])
async def test_other_malformed_topics_end_the_connection(
    embedded: tuple[Hub, dict[str, str]], topic: str
) -> None:
    hub, tokens = embedded
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"]) == 0
    await wire.send(publish(topic, b"{}", qos=0))
    assert await closed_by_broker(wire)
    await wire.close()


async def test_a_packet_whose_fields_overrun_its_length_ends_the_connection(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"]) == 0
    # A SUBSCRIBE claiming a 200-byte topic filter inside a 10-byte packet.
    await wire.send(packet(0x82, b"\x00\x01\x00\xc8" + b"abcdef"))
    assert await closed_by_broker(wire)
    await wire.close()
    await stores_a_reading_of(hub, tokens["sensor-1"], "sensor-1", 1)
