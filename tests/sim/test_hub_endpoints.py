"""``telehub simulate`` asks the hub where its listeners are, and checks what it stored.

A real ``telehub simulate`` process each (it installs signal handlers, which a
runner thread cannot), against a hub whose embedded broker is on a free port,
never 1883: the simulator must find that port itself, and a run whose
readings were acknowledged by a broker that is not the hub's must fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from telehub.config import Settings
from telehub.grpc.server import grpc_running
from telehub.hub import open_hub
from telehub.mqtt.service import mqtt_running
from telehub.sim.provision import device_ids
from tests.live.support import LiveServer, live_server
from tests.mqtt.support import Mosquitto
from tests.sim.test_runs import free_port, stored

# What is under test is the simulator, not the storage: SQLite only (a process each is slow).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
RUN = ("--devices", "2", "--rate", "20", "--duration", "1.5", "--json")


@pytest.fixture
async def hub_on_another_port(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[LiveServer, int]]:
    port = free_port()
    settings = make_settings(mqtt_url="embedded", mqtt_embedded_port=port)
    async with open_hub(settings) as hub, mqtt_running(hub), live_server(hub) as server:
        yield server, port


async def simulate(tmp_path: Path, server: LiveServer, *argv: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_CLI_CONFIG"] = str(tmp_path / "cli.toml")  # no saved login of anyone's
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "telehub"),
        *("simulate", "--url", server.base, "--token", server.admin, *RUN, *argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_mqtt_devices_go_to_the_hubs_broker_without_a_flag(
    hub_on_another_port: tuple[LiveServer, int], tmp_path: Path
) -> None:
    server, port = hub_on_another_port
    code, out, err = await simulate(tmp_path, server, "--transport", "mqtt", "--prefix", "simi")

    assert code == 0, err
    summary = json.loads(out)
    assert summary["endpoint"] == f"mqtt://127.0.0.1:{port}"
    assert summary["error_total"] == 0
    assert summary["readings_acknowledged"] > 0
    assert summary["readings_stored"] == summary["readings_acknowledged"]
    assert summary["missing"] == {}
    assert await stored(server.hub, "simi", 2) == summary["readings_acknowledged"]
    for device_id in device_ids("simi", 2):  # presence reported, and a clean end said so
        assert (await server.hub.devices.get(device_id)).online is False


@pytest.mark.services
async def test_readings_another_broker_acknowledged_fail_the_run(
    hub_on_another_port: tuple[LiveServer, int], tmp_path: Path
) -> None:
    """A broker of our own, not the hub's and bridged to nothing: it acknowledges all."""
    server, port = hub_on_another_port
    other = Mosquitto(tmp_path / "other-broker")
    other.start()
    try:
        code, out, err = await simulate(
            tmp_path, server, "--transport", "mqtt", "--mqtt-url", other.url, "--prefix", "simo"
        )
    finally:
        other.stop()

    assert code == 1, err
    summary = json.loads(out)
    assert summary["endpoint"] == other.url  # the flag wins over the hub's word
    acknowledged = summary["readings_acknowledged"]
    assert acknowledged > 0
    assert summary["readings_stored"] == 0
    assert set(summary["missing"]) == {"simo-1", "simo-2"}
    assert sum(summary["missing"].values()) == acknowledged
    [line] = err.splitlines()
    assert line.startswith(
        f"telehub: simulation incomplete: {acknowledged} of {acknowledged} acknowledged "
        "readings are not stored by the hub, missing from 2 of 2 devices: "
    )
    assert f"simo-1 ({summary['missing']['simo-1']})" in line
    assert line.endswith(
        f"(they went to {other.url}; the hub's MQTT broker is mqtt://127.0.0.1:{port})"
    )
    assert await stored(server.hub, "simo", 2) == 0


async def test_grpc_devices_go_to_the_hubs_grpc_server_without_a_flag(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(grpc_host="127.0.0.1", grpc_port=port)
    async with open_hub(settings) as hub, grpc_running(hub), live_server(hub) as server:
        code, out, err = await simulate(tmp_path, server, "--transport", "grpc", "--prefix", "simq")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["endpoint"] == f"127.0.0.1:{port}"
        assert summary["readings_stored"] == summary["readings_acknowledged"] > 0
