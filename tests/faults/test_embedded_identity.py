"""On the embedded broker a client id is bound to its login: a device uses its own
id and nobody takes over another's session, the bridge's least of all."""

from __future__ import annotations

import asyncio

import pytest

from telehub.hub import Hub
from tests.faults.mqtt_wire import Wire, publish
from tests.mqtt.support import eventually

BRIDGE_CLIENT_ID = "telehub-bridge"


async def presence_after_will(hub: Hub, token: str) -> None:
    """sensor-1 comes online with an ``offline`` will and drops its TCP connection:
    the will reaches the hub through the bridge's subscription."""
    wire = await Wire.open(hub.settings.mqtt_embedded_port)
    status = "telehub/v1/devices/sensor-1/status"
    assert await wire.login("sensor-1", "sensor-1", token, will=(status, b"offline")) == 0
    await wire.send(publish(status, b"online", qos=1, packet_id=1))
    assert await wire.read() is not None

    async def online() -> bool:
        return (await hub.devices.get("sensor-1")).online is True

    await eventually(online, what="sensor-1 online")
    wire.writer.transport.abort()  # no DISCONNECT: the broker publishes the will

    async def offline() -> bool:
        return (await hub.devices.get("sensor-1")).online is False

    await eventually(offline, what="sensor-1's will (offline) through the bridge")


@pytest.mark.parametrize(
    "login",
    [
        pytest.param(("nobody", "wrong"), id="anonymous-with-wrong-login"),
        pytest.param(("sensor-2", "<sensor-2>"), id="a-device-with-its-own-login"),
    ],
)
async def test_nobody_takes_over_the_bridge_s_session(
    embedded: tuple[Hub, dict[str, str]], login: tuple[str, str]
) -> None:
    """amqtt deleted the session a clean CONNECT named before it checked the login:
    one refused connect with the bridge's client id took the bridge's subscriptions."""
    hub, tokens = embedded
    username, password = login
    password = tokens.get(password.strip("<>"), password)
    for _ in range(3):
        wire = await Wire.open(hub.settings.mqtt_embedded_port)
        assert await wire.login(BRIDGE_CLIENT_ID, username, password, clean=True) != 0
        await wire.close()
    await presence_after_will(hub, tokens["sensor-1"])


async def test_a_device_must_use_its_own_id_as_client_id_and_is_told_why(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    for client_id in ("sensor-2", "mosq-12345", ""):
        wire = await Wire.open(hub.settings.mqtt_embedded_port)
        assert await wire.login(client_id, "sensor-1", tokens["sensor-1"]) == 2  # id rejected
        await wire.close()
    records = await hub.rejected.recent(limit=5, before_id=None, device_id="sensor-1")
    assert {r.reason for r in records} == {"client-id-not-allowed"}
    assert "must use its device id 'sensor-1' as its client id" in records[0].detail


async def test_a_device_cannot_take_over_another_device_s_session(
    embedded: tuple[Hub, dict[str, str]],
) -> None:
    hub, tokens = embedded
    victim = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await victim.login("sensor-2", "sensor-2", tokens["sensor-2"]) == 0
    attacker = await Wire.open(hub.settings.mqtt_embedded_port)
    assert await attacker.login("sensor-2", "sensor-1", tokens["sensor-1"]) != 0
    await attacker.close()
    # The victim's connection is still up: a PINGREQ is answered.
    await victim.send(b"\xc0\x00")
    answer = await asyncio.wait_for(victim.read(), 10)
    assert answer is not None
    assert answer.kind == 13
    await victim.close()
