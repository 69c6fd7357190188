"""``telehub command send``, with and without --wait, against a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from telehub.cli.exit_codes import Exit
from telehub.domain.commands import CommandStatus
from telehub.hub import Hub
from tests.cli.conftest import Api, failed, succeeded


@pytest.fixture
async def device(hub: Hub) -> str:
    await hub.devices.create(device_id="dev-1", name=None, attributes={})
    await hub.devices.report_presence("dev-1", online=True, live=True)  # commands go out
    return "dev-1"


async def _device_answers(hub: Hub, device_id: str, *, ok: bool, result: Any) -> None:
    """What the MQTT bridge and the device do: send the command, then answer it."""
    async with asyncio.timeout(10):
        while not (claimed := await hub.commands.claim_due()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    [sent] = claimed
    await hub.commands.acknowledge(device_id, sent.id, ok=ok, result=result)


async def test_send_queues_a_command_with_typed_params(api: Api, device: str, hub: Hub) -> None:
    queued = succeeded(await api("command", "send", device, "reboot", "--ttl", "30"))
    as_json = json.loads(
        succeeded(
            await api(
                "command", "send", device, "set", "--param", "seconds=30",
                "--param", "mode=eco", "--param", "force=true", "--json",
            )
        )
    )  # fmt: skip

    command_id, status, *rest = queued.split()
    assert status == "pending"
    assert rest[0] == "(expires"
    assert (await hub.commands.get(device, command_id)).name == "reboot"
    assert as_json["status"] == "pending"
    assert as_json["params"] == {"seconds": 30, "mode": "eco", "force": True}


async def test_wait_prints_the_ack_and_its_result(api: Api, device: str, hub: Hub) -> None:
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(_device_answers(hub, device, ok=True, result={"uptime": 0}))
        done = await api("command", "send", device, "reboot", "--wait", "--within", "10")

    command_id, status = succeeded(done).splitlines()[0].split()
    assert status == "acked"
    assert done.stdout.splitlines()[1] == 'result: {"uptime": 0}'
    assert (await hub.commands.get(device, command_id)).status is CommandStatus.ACKED


async def test_wait_exits_1_when_the_device_reports_failure(
    api: Api, device: str, hub: Hub
) -> None:
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(_device_answers(hub, device, ok=False, result={"error": "busy"}))
        done = await api("command", "send", device, "reboot", "--wait", "--json")

    assert done.exit_code == 1, done.output
    body = json.loads(done.stdout)
    assert (body["status"], body["result"]) == ("failed", {"error": "busy"})


async def test_wait_gives_up_at_within_with_exit_1(api: Api, device: str) -> None:
    done = await api("command", "send", device, "reboot", "--wait", "--within", "0.3")

    line = failed(done, Exit.FAILED)
    assert done.stdout.split()[1] == "pending"  # where it stands when the wait ended
    assert line.startswith("telehub: gave up after 0.3 s: cmd-")
    assert line.endswith(" is still pending")


async def test_within_needs_wait(api: Api, device: str) -> None:
    result = await api("command", "send", device, "reboot", "--within", "5")
    assert result.exit_code == 2
    assert "only with --wait" in result.stderr
