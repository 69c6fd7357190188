"""Nothing lost, nothing twice: persistent sessions, kill -9, broker restarts, $share.

The acknowledgement rule under test: the bridge acknowledges a QoS 1/2
message only after its readings are committed, so whatever it had received
but not committed when it died is delivered again, and stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from telehub.config import Settings
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import bridge_for
from tests.mqtt.conftest import BridgeFactory, count
from tests.mqtt.support import Mosquitto, eventually, publish_lines, telemetry_topic

pytestmark = pytest.mark.services

TELEHUB = str(Path(sys.executable).with_name("telehub"))
BASE_MS = 1_767_225_600_000


def lines(count: int, *, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"ts": BASE_MS + i * 1000, "values": {"v": i}}).encode()
        for i in range(start, start + count)
    ]


async def wait_for_count(hub: Hub, device_id: str, expected: int, *, within: float = 60) -> None:
    async def reached() -> bool:
        return await count(hub, device_id, "v") >= expected

    await eventually(reached, within=within, what=f"{expected} readings of {device_id}")


async def test_messages_sent_while_the_bridge_is_down_arrive_when_it_returns(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(10))
        await wait_for_count(mqtt_hub, "sensor-1", 10)
    # Down: the broker queues for the bridge's persistent session.
    publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(300, start=10))
    async with running_bridge(mqtt_hub):
        await wait_for_count(mqtt_hub, "sensor-1", 310)
    assert await count(mqtt_hub, "sensor-1", "v") == 310
    assert mqtt_hub.metrics.readings_duplicate._value.get() == 0


@pytest.mark.allow_error_logs
async def test_bridge_reconnects_and_resubscribes_after_the_broker_lost_everything(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    async with running_bridge(mqtt_hub):
        publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(5))
        await wait_for_count(mqtt_hub, "sensor-1", 5)
        mosquitto.kill()
        for stored in mosquitto.workdir.glob("*.db"):
            stored.unlink()  # the broker forgets the bridge's session and subscriptions
        mosquitto.start()

        async def connected() -> bool:
            return mqtt_hub.metrics.mqtt_connected._value.get() == 1

        await eventually(connected, within=30, what="the bridge to reconnect")
        # Retry until the new subscription is in place: the broker keeps no
        # session now, so messages sent before it are rightly not delivered.
        published = 5

        async def caught_up() -> bool:
            nonlocal published
            publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(1, start=published))
            published += 1
            return await count(mqtt_hub, "sensor-1", "v") > 5

        await eventually(caught_up, within=30, what="a reading after the broker restart")


async def test_two_bridges_on_a_shared_subscription_store_every_message_once(
    mqtt_settings: Settings, mqtt_hub: Hub, mosquitto: Mosquitto
) -> None:
    total = 4000
    settings_1 = mqtt_settings.model_copy(
        update={"mqtt_shared_group": "telehub", "mqtt_client_id": "bridge-1"}
    )
    settings_2 = settings_1.model_copy(update={"mqtt_client_id": "bridge-2"})
    async with (
        open_hub(settings_1, migrate=False) as hub_1,
        open_hub(settings_2, migrate=False) as hub_2,
    ):
        bridges = [bridge_for(hub_1), bridge_for(hub_2)]
        for bridge in bridges:
            await bridge.start()
        try:
            publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(total // 2))
            publish_lines(
                mosquitto.port, telemetry_topic("sensor-2"), lines(total // 2, start=total // 2)
            )
            await wait_for_count(mqtt_hub, "sensor-1", total // 2)
            await wait_for_count(mqtt_hub, "sensor-2", total // 2)
        finally:
            for bridge in bridges:
                await bridge.stop()
        accepted = [hub.metrics.readings_accepted._value.get() for hub in (hub_1, hub_2)]
        duplicates = [hub.metrics.readings_duplicate._value.get() for hub in (hub_1, hub_2)]
    # Each message went to one bridge only, and both took part.
    assert sum(accepted) == total
    assert min(accepted) > 0, accepted
    assert duplicates == [0, 0]
    assert await count(mqtt_hub, "sensor-1", "v") + await count(mqtt_hub, "sensor-2", "v") == total


async def _ingest_process(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env |= {
        "TELEHUB_DATABASE_URL": settings.database_url,
        "TELEHUB_MQTT_URL": settings.mqtt_url,
        "TELEHUB_MQTT_CLIENT_ID": "bridge-kill-test",
    }
    if settings.database_schema:
        env["TELEHUB_DATABASE_SCHEMA"] = settings.database_schema
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            TELEHUB, "ingest", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while "telehub MQTT bridge on" not in await asyncio.to_thread(log.read_text):
        if process.returncode is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            output = await asyncio.to_thread(log.read_text)
            pytest.fail(f"telehub ingest did not start:\n{output}")
        await asyncio.sleep(0.05)
    return process


async def test_20000_messages_with_the_bridge_killed_midstream_are_all_stored_once(
    mqtt_settings: Settings, mqtt_hub: Hub, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    total = 20_000
    log = tmp_path / "ingest.log"
    bridge = await _ingest_process(mqtt_settings, log)
    try:
        messages = tmp_path / "messages.txt"
        messages.write_bytes(b"".join(line + b"\n" for line in lines(total)))
        with messages.open("rb") as stdin:
            publisher = await asyncio.create_subprocess_exec(
                *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port)),
                *("-q", "1", "-l", "-t", telemetry_topic("sensor-1")),
                stdin=stdin,
            )
        await wait_for_count(mqtt_hub, "sensor-1", 1000)
        bridge.send_signal(signal.SIGKILL)
        await bridge.wait()
        at_kill = await count(mqtt_hub, "sensor-1", "v")
        assert at_kill < total, "the bridge finished before it could be killed"
        assert await asyncio.wait_for(publisher.wait(), 120) == 0  # the broker has them all
        bridge = await _ingest_process(mqtt_settings, log)
        await wait_for_count(mqtt_hub, "sensor-1", total, within=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            bridge.kill()
        await bridge.wait()
    assert await count(mqtt_hub, "sensor-1", "v") == total
    assert await mqtt_hub.rejected.recent(limit=1, before_id=None, device_id=None) == []


async def test_sigterm_stops_the_bridge_cleanly_after_committing_what_it_received(
    mqtt_settings: Settings, mqtt_hub: Hub, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    bridge = await _ingest_process(mqtt_settings, log)
    publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines(2000))
    bridge.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(bridge.wait(), 30) == 0
    output = await asyncio.to_thread(log.read_text)
    assert "Traceback" not in output, output
    # What it had not acknowledged comes again to the next bridge, stored once.
    bridge = await _ingest_process(mqtt_settings, log)
    try:
        await wait_for_count(mqtt_hub, "sensor-1", 2000)
    finally:
        bridge.send_signal(signal.SIGTERM)
        await bridge.wait()
    assert await count(mqtt_hub, "sensor-1", "v") == 2000


async def test_ingest_refuses_the_embedded_broker_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/telehub.db"
    process = await asyncio.create_subprocess_exec(
        TELEHUB, "ingest", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "TELEHUB_MQTT_URL=mqtt://host:port" in stderr.decode()
    assert "Traceback" not in stderr.decode()
