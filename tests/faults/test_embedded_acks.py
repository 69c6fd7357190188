"""On the embedded broker, every acknowledged message is stored, exactly once.

amqtt alone acknowledged on receipt and dropped what it had not relayed when
a device disconnected: a 20,000-line burst stored ~10,000, bursts of 100
stored ~60. Each check here counts the store right after the publisher got
its acknowledgements, with no waiting: acknowledged means committed.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from telehub.hub import Hub
from tests.conftest import require_service
from tests.faults.mqtt_wire import PUBACK, PUBCOMP, PUBREC, Wire, publish, pubrel
from tests.mqtt.conftest import count
from tests.mqtt.embedded_support import BASE_MS
from tests.mqtt.support import telemetry_topic

pytestmark = pytest.mark.services  # mosquitto_pub, a C client, plays the device


def lines(first: int, n: int) -> bytes:
    return b"".join(
        json.dumps({"ts": BASE_MS + i, "values": {"v": i}}).encode() + b"\n"
        for i in range(first, first + n)
    )


async def burst(hub: Hub, token: str, payload: bytes, *, qos: int = 1) -> None:
    """``mosquitto_pub -l``: every line a message, then disconnect at once."""
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(hub.settings.mqtt_embedded_port)),
        *("-V", "mqttv311", "-i", "sensor-1", "-u", "sensor-1", "-P", token),
        *("-q", str(qos), "-t", telemetry_topic("sensor-1"), "-l"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(payload), 120)
    assert process.returncode == 0, output.decode()


async def test_a_burst_of_20000_that_disconnects_at_once_is_stored_whole(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    await burst(hub, tokens["sensor-1"], lines(0, 20_000))
    assert await count(hub, "sensor-1", "v") == 20_000


async def test_bursts_of_100_each_disconnecting_at_once_are_stored_whole(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    for round_ in range(10):
        await burst(hub, tokens["sensor-1"], lines(round_ * 100, 100))
        assert await count(hub, "sensor-1", "v") == (round_ + 1) * 100


async def test_a_qos_2_burst_is_stored_whole(embedded: tuple[Hub, dict[str, str]]) -> None:
    hub, tokens = embedded
    await burst(hub, tokens["sensor-1"], lines(0, 2_000), qos=2)
    assert await count(hub, "sensor-1", "v") == 2_000


async def test_each_puback_comes_after_its_commit(embedded: tuple[Hub, dict[str, str]]) -> None:
    """One message at a time, raw: when its PUBACK arrives, the reading is stored."""
    hub, tokens = embedded
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"]) == 0
    for i in range(1, 21):
        await wire.send(publish(telemetry_topic("sensor-1"), lines(i, 1), qos=1, packet_id=i))
        answer = await wire.read()
        assert answer is not None
        assert (answer.kind, answer.packet_id) == (PUBACK, i)
        assert await count(hub, "sensor-1", "v") == i
    await wire.close()


async def test_a_resent_qos_2_publish_is_stored_once(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    """A QoS 2 PUBLISH sent again before PUBREL (its PUBREC lost, say) is not stored again,
    even without a timestamp to tell the two apart."""
    hub, tokens = embedded
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"], clean=False) == 0
    message = publish(telemetry_topic("sensor-1"), b'{"values": {"v": 1}}', qos=2, packet_id=7)
    await wire.send(message)
    first = await wire.read()
    assert first is not None
    assert (first.kind, first.packet_id) == (PUBREC, 7)
    await wire.close()
    # The device reconnects to its session and, never having seen PUBREC, sends it again.
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await wire.login("sensor-1", "sensor-1", tokens["sensor-1"], clean=False) == 0
    await wire.send(bytes([message[0] | 0x08]) + message[1:])  # DUP set
    again = await wire.read()
    assert again is not None
    assert (again.kind, again.packet_id) == (PUBREC, 7)
    await wire.send(pubrel(7))
    done = await wire.read()
    assert done is not None
    assert (done.kind, done.packet_id) == (PUBCOMP, 7)
    await wire.close()
    assert await count(hub, "sensor-1", "v") == 1
