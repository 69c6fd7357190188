"""``telehub serve`` killed -9 in the middle of an MQTT burst: every message the
embedded broker acknowledged is stored after the restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from telehub.config import load_settings
from telehub.core.ports import SeriesRange
from telehub.hub import open_hub
from tests.faults.mqtt_wire import PUBACK, Wire, publish
from tests.mqtt.embedded_support import BASE_MS
from tests.mqtt.support import telemetry_topic
from tests.services.server_process import Server, serve_env

MESSAGES = 6_000
KILL_AFTER_ACKS = 1_500
WINDOW = 200


async def test_every_acknowledged_message_survives_kill_9(tmp_path: Path) -> None:
    env = serve_env(tmp_path)
    port = env["TELEHUB_MQTT_EMBEDDED_PORT"]
    settings = load_settings(database_url=env["TELEHUB_DATABASE_URL"])
    async with open_hub(settings) as hub:
        _, token = await hub.devices.create(device_id="dev-k", name=None, attributes={})

    server = Server(env, tmp_path / "serve.log", ("serve",))
    try:
        await asyncio.to_thread(server.wait_healthy)
        acked = await publish_until_killed(int(port), token, server)
    finally:
        server.kill()
    assert len(acked) >= KILL_AFTER_ACKS, server.output()

    async with open_hub(settings) as hub:
        series = SeriesRange("dev-k", "v", 0, 2**62, MESSAGES + 1)
        stored = {int(p.value) for p in await hub.store.readings.points(series)}
    lost = acked - stored
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:10]}"


async def publish_until_killed(port: int, token: str, server: Server) -> set[int]:
    """Publish at QoS 1 with up to WINDOW in flight; SIGKILL the server once
    KILL_AFTER_ACKS are acknowledged; the message numbers that got a PUBACK."""
    wire = await Wire.open(port)
    assert await wire.login("dev-k", "dev-k", token) == 0
    acked: set[int] = set()
    room = asyncio.Semaphore(WINDOW)

    async def send_all() -> None:
        for i in range(1, MESSAGES + 1):
            await room.acquire()
            payload = json.dumps({"ts": BASE_MS + i, "values": {"v": i}}).encode()
            try:
                await wire.send(publish(telemetry_topic("dev-k"), payload, qos=1, packet_id=i))
            except ConnectionError:
                return

    sender = asyncio.create_task(send_all())
    try:
        while (answer := await wire.read()) is not None:
            assert answer.kind == PUBACK
            acked.add(answer.packet_id)
            room.release()
            if len(acked) == KILL_AFTER_ACKS:
                server.process.kill()  # SIGKILL: no drain, no clean shutdown
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await wire.close()
    return acked


pytestmark = pytest.mark.services  # a real telehub serve process
