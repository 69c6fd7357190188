"""Commands, tokens and rejected inputs through both REST SDKs, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from telehub.client import (
    AsyncClient,
    Client,
    NotFound,
    Unauthorized,
    ValidationFailed,
    WaitTimedOut,
)
from telehub.domain.commands import CommandStatus
from telehub.hub import Hub
from tests.live.support import LiveServer, live_server
from tests.sdk.test_sdk_http import _sync


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running


async def _acknowledge_soon(hub: Hub, device_id: str, *, ok: bool, result: Any) -> None:
    """What the MQTT bridge does: send (pending → sent), then the device's answer."""
    await asyncio.sleep(0.3)
    [sent] = await hub.commands.claim_due()
    await hub.commands.acknowledge(device_id, sent.id, ok=ok, result=result)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_wait_command_returns_the_final_status_with_the_result(
    server: LiveServer, kind: str
) -> None:
    async with AsyncClient(server.base, token=server.admin) as admin:
        await admin.create_device("dev-1")
        await server.hub.devices.report_presence("dev-1", online=True, live=True)
        command = await admin.send_command("dev-1", "reboot", {"delay": 5}, ttl_s=60)
    assert command.status is CommandStatus.PENDING
    device_answers = asyncio.create_task(
        _acknowledge_soon(server.hub, "dev-1", ok=False, result={"error": "busy"})
    )

    if kind == "async":
        async with AsyncClient(server.base, token=server.admin) as client:
            done = await client.wait_command("dev-1", command.id, within=10)
    else:
        done = await _sync(
            Client(server.base, token=server.admin),
            lambda c: c.wait_command("dev-1", command.id, within=10),
        )
    await device_answers

    assert (done.id, done.status, done.result) == (
        command.id,
        CommandStatus.FAILED,
        {"error": "busy"},
    )
    assert done.completed_at is not None


async def test_wait_command_gives_up_at_its_deadline(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as client:
        await client.create_device("dev-1")
        command = await client.send_command("dev-1", "reboot", ttl_s=60)
        # Never connected: the command waits for the device, queued.
        with pytest.raises(WaitTimedOut, match="still queued"):
            await client.wait_command("dev-1", command.id, within=0.3)


async def test_commands_bulk_tokens_and_rejected_read_the_same_on_both(
    server: LiveServer,
) -> None:
    async with AsyncClient(server.base, token=server.admin) as aio:
        for n in range(3):
            await aio.create_device(f"dev-{n}", attributes={"site": "north" if n else "south"})
        first = await aio.send_command("dev-1", "set_interval", {"seconds": 30})
        second = await aio.send_command("dev-1", "reboot")
        batch = await aio.bulk_command("ping", attributes={"site": "north"}, ttl_s=30)
        token = await aio.create_token("dashboard", scope="read")
        with pytest.raises(ValidationFailed):  # recorded among the rejected inputs
            await aio.send_telemetry("dev-1", {"bad metric": 1.0})
        want = (
            [c.id async for c in aio.list_commands("dev-1", page_size=1)],
            await aio.get_command("dev-1", first.id),
            await aio.get_batch(batch.batch_id),
            sorted(t.name for t in await aio.list_tokens()),
            [r.reason async for r in aio.rejected(device_id="dev-1")],
        )

    got = await _sync(
        Client(server.base, token=server.admin),
        lambda c: (
            [x.id for x in c.list_commands("dev-1", page_size=1)],
            c.get_command("dev-1", first.id),
            c.get_batch(batch.batch_id),
            sorted(t.name for t in c.list_tokens()),
            [r.reason for r in c.rejected(device_id="dev-1")],
        ),
    )

    assert got == want
    [pinged] = [c.id for c in batch.commands if c.device_id == "dev-1"]
    assert want[0] == [pinged, second.id, first.id]  # newest first, fetched a page of one at a time
    assert sorted(c.device_id for c in batch.commands) == ["dev-1", "dev-2"]
    assert want[2].counts[CommandStatus.QUEUED] == 2  # neither device reported online
    assert want[4] == ["invalid-input"]
    async with AsyncClient(server.base, token=server.admin) as aio:
        await aio.delete_token(token.id)
    async with AsyncClient(server.base, token=token.token) as revoked:
        with pytest.raises(Unauthorized):
            await revoked.get_device("dev-1")
    async with AsyncClient(server.base, token=server.admin) as aio:
        with pytest.raises(NotFound):
            await aio.get_command("dev-1", "cmd-0000000000000000")
