"""An MQTT device during a silent partition to PostgreSQL: nothing is acknowledged
that is not stored, nothing is logged as a crash, and all of it lands once the
network heals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from telehub.config import Settings
from telehub.hub import open_hub
from telehub.mqtt.service import mqtt_running
from tests.faults.mqtt_wire import PUBACK, Wire, publish
from tests.grpc.server_support import proxied
from tests.mqtt.support import free_port

pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.services)]
)

DEADLINES = {
    "database_connect_timeout_seconds": 1.0,
    "database_statement_timeout_seconds": 2.0,
    "database_commit_timeout_seconds": 2.0,
}
STATUS = "telehub/v1/devices/sensor-1/status"
TELEMETRY = "telehub/v1/devices/sensor-1/telemetry"


async def test_status_and_telemetry_wait_out_a_partition_unacknowledged(
    make_settings: Callable[..., Settings],
) -> None:
    async with (
        proxied(
            make_settings, mqtt_url="embedded", mqtt_embedded_port=free_port(), **DEADLINES
        ) as (proxy, settings),
        open_hub(settings) as hub,
    ):
        _, token = await hub.devices.create(device_id="sensor-1", name=None, attributes={})
        async with mqtt_running(hub):
            wire = await Wire.open(settings.mqtt_embedded_port)
            assert await wire.login("sensor-1", "sensor-1", token) == 0
            await proxy.black_hole()
            reading = {"ts": int(time.time() * 1000) - 1000, "values": {"v": 1}}
            await wire.send(publish(STATUS, b"online", qos=1, packet_id=1))
            await wire.send(publish(TELEMETRY, json.dumps(reading).encode(), qos=1, packet_id=2))
            # Past every deadline, and still no acknowledgement: nothing is stored.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(wire.read(), 5)
            await proxy.restore()
            acks = set()
            async with asyncio.timeout(30):
                while len(acks) < 2:
                    answer = await wire.read()
                    assert answer is not None
                    assert answer.kind == PUBACK
                    acks.add(answer.packet_id)
            assert acks == {1, 2}
            await wire.close()
            assert (await hub.devices.get("sensor-1")).online is True

            # Acknowledged means committed: no waiting.
        assert "v" in (await hub.store.readings.latest("sensor-1")).readings
