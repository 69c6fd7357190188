"""Devices on the embedded broker over bare sockets, for the revocation tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from telehub.core.telemetry import SeriesQuery
from telehub.domain.readings import from_micros
from telehub.hub import Hub
from tests.faults.mqtt_wire import PUBACK, Wire, publish
from tests.mqtt.embedded_support import BASE_MS, reading
from tests.revocation.support import WITHIN

BAD_LOGIN = 4


def telemetry(device_id: str) -> str:
    return f"telehub/v1/devices/{device_id}/telemetry"


def status(device_id: str) -> str:
    return f"telehub/v1/devices/{device_id}/status"


async def device(hub: Hub, device_id: str) -> str:
    _, token = await hub.devices.create(device_id=device_id, name=None, attributes={})
    return token


class Wires:
    """A test's connections to the broker, every one closed at its end."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._opened: list[Wire] = []

    async def open(self) -> Wire:
        wire = await Wire.open(self._port)
        self._opened.append(wire)
        return wire

    async def connected(self, device_id: str, token: str, **options: object) -> Wire:
        """Logged in as ``device_id`` (its id as client id), accepted."""
        wire = await self.open()
        assert await wire.login(device_id, device_id, token, **options) == 0  # type: ignore[arg-type]
        return wire

    async def close(self) -> None:
        for wire in self._opened:
            await wire.close()


async def published(wire: Wire, device_id: str, i: int) -> None:
    """Reading ``i`` at QoS 1, acknowledged (so committed)."""
    await wire.send(publish(telemetry(device_id), reading(i), qos=1, packet_id=i + 1))
    answer = await asyncio.wait_for(wire.read(), WITHIN)
    assert answer is not None, "the broker closed the connection"
    assert answer.kind == PUBACK, answer


async def disconnected(wire: Wire) -> None:
    """The broker ends the connection: whatever it still answers is a failure."""
    try:
        async with asyncio.timeout(WITHIN):
            answer = await wire.read()
    except TimeoutError:
        pytest.fail(f"the connection was still open {WITHIN} s after its token was revoked")
    assert answer is None, f"the connection is open: the broker answered {answer}"


async def values(hub: Hub, device_id: str) -> list[float]:
    start = from_micros(BASE_MS * 1000)
    window = SeriesQuery(["v"], start, start + timedelta(days=1), None, None, 100, False)
    return [p.value for p in (await hub.telemetry.query(device_id, window)).get("v", [])]
