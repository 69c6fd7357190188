"""On the embedded broker, a device whose token is rotated, or which is deleted, is
disconnected at once. A deleted device's connection stored nothing, and no will,
into a device made afterwards with the same id (it used to go on publishing into
it). Bare sockets (tests/faults/mqtt_wire.py) see every PUBACK and the end of the
connection as they happen."""

from __future__ import annotations

import contextlib

import pytest

from telehub.hub import Hub
from tests.faults.mqtt_wire import publish
from tests.mqtt.embedded_support import reading
from tests.mqtt.support import eventually
from tests.revocation.mqtt_support import (
    BAD_LOGIN,
    Wires,
    device,
    disconnected,
    published,
    status,
    telemetry,
    values,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the database plays no part


async def test_a_deleted_device_is_disconnected_and_nothing_of_it_reaches_its_successor(
    broker: Hub, wires: Wires
) -> None:
    hub = broker
    token = await device(hub, "sensor-1")
    doomed = await wires.connected("sensor-1", token, will=(status("sensor-1"), b"offline"))
    bystander = await wires.connected(
        "sensor-2", await device(hub, "sensor-2"), will=(status("sensor-2"), b"offline")
    )
    await published(doomed, "sensor-1", 0)

    await hub.devices.delete("sensor-1")
    successor_token = await device(hub, "sensor-1")
    # What the old connection sends now is not stored, for the new device least of all.
    with contextlib.suppress(ConnectionError):
        await doomed.send(publish(telemetry("sensor-1"), reading(1), qos=1, packet_id=2))
    await disconnected(doomed)

    successor = await wires.connected("sensor-1", successor_token)
    await published(successor, "sensor-1", 2)
    assert await values(hub, "sensor-1") == [2.0]
    await published(bystander, "sensor-2", 0)

    # Nor does its will ("offline"): the bystander's will, sent through the bridge
    # after it would have been, arrives, and the new device has no presence yet.
    await bystander.send(publish(status("sensor-2"), b"online", qos=1, packet_id=2))
    assert (await bystander.read()) is not None
    bystander.writer.transport.abort()  # no DISCONNECT: the broker sends the will

    async def bystander_offline() -> bool:
        return (await hub.devices.get("sensor-2")).online is False

    await eventually(bystander_offline, what="sensor-2's will through the bridge")
    assert (await hub.devices.get("sensor-1")).online is None

    old = await wires.open()
    assert await old.login("sensor-1", "sensor-1", token) == BAD_LOGIN


async def test_a_rotated_token_disconnects_its_device_and_the_new_token_connects(
    broker: Hub, wires: Wires
) -> None:
    hub = broker
    token = await device(hub, "sensor-1")
    doomed = await wires.connected("sensor-1", token)
    bystander = await wires.connected("sensor-2", await device(hub, "sensor-2"))
    await published(doomed, "sensor-1", 0)

    new_token = await hub.devices.rotate_token("sensor-1")

    await disconnected(doomed)
    renewed = await wires.connected("sensor-1", new_token)
    await published(renewed, "sensor-1", 1)
    await published(bystander, "sensor-2", 0)
    assert await values(hub, "sensor-1") == [0.0, 1.0]
    old = await wires.open()
    assert await old.login("sensor-1", "sensor-1", token) == BAD_LOGIN


async def test_a_device_deleted_while_offline_leaves_no_session_to_its_successor(
    broker: Hub, wires: Wires
) -> None:
    """A stored session (clean_session=0) holds subscriptions and queued commands: a new
    device with the same id must not resume the old one's."""
    hub = broker
    token = await device(hub, "sensor-1")
    first = await wires.open()
    assert await first.login("sensor-1", "sensor-1", token, clean=False) == 0
    await first.close()
    again = await wires.open()
    assert await again.login("sensor-1", "sensor-1", token, clean=False) == 0
    assert again.session_present  # the broker kept it while the device was away
    await again.close()

    await hub.devices.delete("sensor-1")
    successor_token = await device(hub, "sensor-1")
    successor = await wires.open()
    assert await successor.login("sensor-1", "sensor-1", successor_token, clean=False) == 0
    assert not successor.session_present
