"""Device registry ↔ Mosquitto dynamic security: create, rotate, delete keep them in step."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from telehub.config import Settings
from telehub.errors import BrokerUnavailable, ConfigError
from telehub.hub import Hub, open_hub
from telehub.mqtt.dynsec import DynsecError
from telehub.mqtt.service import bridge_for
from tests.mqtt.conftest import count
from tests.mqtt.dynsec_broker import ADMIN, BRIDGE, Broker, client_args, login, run_dynsec_broker
from tests.mqtt.support import eventually, free_port

pytestmark = pytest.mark.services

TELEHUB = str(Path(sys.executable).with_name("telehub"))


def dynsec_settings(make_settings: Callable[..., Settings], port: int) -> Settings:
    return make_settings(
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_username=BRIDGE[0],
        mqtt_password=BRIDGE[1],
        mqtt_client_id="bridge-dynsec",
        mqtt_session_expiry_seconds=60,
        mqtt_dynsec_username=ADMIN[0],
        mqtt_dynsec_password=ADMIN[1],
        mqtt_dynsec_timeout_seconds=1.0,
    )


@pytest.fixture
async def hub(make_settings: Callable[..., Settings], broker: Broker) -> AsyncIterator[Hub]:
    async with open_hub(dynsec_settings(make_settings, broker.port)) as running:
        yield running


async def bridge_login(broker: Broker) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")} | {
        "TELEHUB_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "TELEHUB_MQTT_USERNAME": BRIDGE[0],
        "TELEHUB_MQTT_PASSWORD": BRIDGE[1],
        "TELEHUB_MQTT_DYNSEC_USERNAME": ADMIN[0],
        "TELEHUB_MQTT_DYNSEC_PASSWORD": ADMIN[1],
    }
    process = await asyncio.create_subprocess_exec(
        TELEHUB, "mqtt", "bridge-login", env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return subprocess.CompletedProcess(
        "bridge-login", process.returncode or 0, stdout.decode(), stderr.decode()
    )


def publish_as(broker: Broker, login: tuple[str, str], topic: str, body: str) -> None:
    subprocess.run(
        ["mosquitto_pub", *client_args(broker, login), "-q", "1", "-t", topic, "-m", body],
        check=True,
        timeout=10,
    )


async def test_a_created_device_logs_in_and_its_telemetry_is_stored(
    hub: Hub, broker: Broker
) -> None:
    # The bridge's own login, made once by the operator.
    made = await bridge_login(broker)
    assert made.returncode == 0, made.stderr
    assert f"bridge login {BRIDGE[0]!r} ready" in made.stdout
    device, token = await hub.devices.create(device_id="dyn-1", name=None, attributes={})
    assert login(broker, (device.id, token)) == "ok"
    assert login(broker, (device.id, "thd_wrong")) != "ok"
    bridge = bridge_for(hub)
    await bridge.start()
    try:
        body = json.dumps({"ts": 1_767_225_600_000, "values": {"v": 1}})
        publish_as(broker, (device.id, token), "telehub/v1/devices/dyn-1/telemetry", body)

        async def stored() -> bool:
            return await count(hub, "dyn-1", "v") == 1

        await eventually(stored, what="the reading through the dynsec broker")
    finally:
        await bridge.stop()


async def test_a_device_with_a_mac_address_id_gets_a_login_and_its_own_topics(
    hub: Hub, broker: Broker, backend: str
) -> None:
    # Its id is its user name and in its role's name and ACL topics, case and colons kept.
    device_id = f"AA:bb:cc:dd:ee:{len(backend):02x}"  # one per backend: the broker is shared
    device, token = await hub.devices.create(device_id=device_id, name=None, attributes={})
    assert login(broker, (device.id, token)) == "ok"
    assert (await bridge_login(broker)).returncode == 0
    bridge = bridge_for(hub)
    await bridge.start()
    try:
        body = json.dumps({"ts": 1_767_225_600_000, "values": {"v": 1}})
        # Another case is another device's topic: the broker drops it (had the bridge got
        # it, it would have recorded an unknown device before the reading that follows).
        publish_as(
            broker, (device.id, token), f"telehub/v1/devices/{device_id.lower()}/telemetry", body
        )
        publish_as(broker, (device.id, token), f"telehub/v1/devices/{device_id}/telemetry", body)

        async def stored() -> bool:
            return await count(hub, device_id, "v") == 1

        await eventually(stored, what="the reading through the dynsec broker")
    finally:
        await bridge.stop()
    assert await hub.rejected.recent(limit=5, before_id=None, device_id=None) == []


async def test_rotation_and_deletion_reach_the_broker(hub: Hub, broker: Broker) -> None:
    device, old = await hub.devices.create(device_id="dyn-2", name=None, attributes={})
    new = await hub.devices.rotate_token(device.id)
    assert login(broker, (device.id, old)) != "ok"
    assert login(broker, (device.id, new)) == "ok"
    await hub.devices.delete(device.id)
    assert login(broker, (device.id, new)) != "ok"


async def test_when_the_broker_fails_nothing_changes_here(
    make_settings: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = run_dynsec_broker(tmp_path_factory)  # this test kills its broker
    broker = next(own)
    try:
        async with open_hub(dynsec_settings(make_settings, broker.port)) as hub:
            device, token = await hub.devices.create(device_id="dyn-3", name=None, attributes={})
            broker.process.kill()
            broker.process.wait(10)
            with pytest.raises(BrokerUnavailable):
                await hub.devices.create(device_id="dyn-4", name=None, attributes={})
            with pytest.raises(BrokerUnavailable):
                await hub.devices.rotate_token(device.id)
            with pytest.raises(BrokerUnavailable):
                await hub.devices.delete(device.id)
            # dyn-4 was removed again; dyn-3 is still there with its token.
            listed = await hub.devices.page(limit=10, after=None, attributes={})
            assert [d.id for d in listed] == ["dyn-3"]
            assert (await hub.auth.authenticate(token)).device_id == "dyn-3"
    finally:
        next(own, None)


async def test_an_unreachable_dynsec_broker_stops_the_hub_from_starting(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(DynsecError, match="unreachable"):
        async with open_hub(dynsec_settings(make_settings, free_port())):
            pass


async def test_a_refused_bridge_login_is_a_clear_error(
    make_settings: Callable[..., Settings], broker: Broker
) -> None:
    settings = dynsec_settings(make_settings, broker.port).model_copy(
        update={"mqtt_password": SecretStr("not-the-password")}
    )
    async with open_hub(settings) as hub:
        with pytest.raises(ConfigError, match="TELEHUB_MQTT_USERNAME / TELEHUB_MQTT_PASSWORD"):
            await bridge_for(hub).start()
