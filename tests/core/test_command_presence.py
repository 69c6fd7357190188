"""Commands and presence: queued while a device is offline, sent when it comes online."""

from __future__ import annotations

import asyncio

from telehub.domain.commands import CommandStatus
from telehub.hub import Hub
from tests.core.commands_support import add_devices, send


async def test_a_command_to_a_device_that_never_connected_is_queued_and_expires_unsent(
    hub: Hub,
) -> None:
    await add_devices(hub, "pump", online=False)

    command = await send(hub)

    assert command.status is CommandStatus.QUEUED
    assert await hub.commands.claim_due() == []
    assert (await hub.commands.get("pump", command.id)).status is CommandStatus.QUEUED
    [expired] = await hub.store.commands.expire(now_us=command.expires_us)
    assert (expired.id, expired.status, expired.sent_us) == (
        command.id,
        CommandStatus.EXPIRED,
        None,
    )


async def test_a_device_coming_online_gets_its_queued_commands_sent_then_delivered_and_acked(
    hub: Hub,
) -> None:
    await add_devices(hub, "pump", online=False)
    command = await send(hub)
    await hub.devices.report_presence("pump", online=False, live=True)  # offline: still waits
    assert await hub.commands.claim_due() == []

    await hub.devices.report_presence("pump", online=True, live=True)
    [sent] = await hub.commands.claim_due()

    assert (sent.id, sent.status) == (command.id, CommandStatus.SENT)
    delivered = await hub.commands.delivered("pump", command.id)
    assert delivered is not None
    assert delivered.status is CommandStatus.DELIVERED
    assert delivered.sent_us is not None
    assert delivered.delivered_us is not None
    assert delivered.sent_us <= delivered.delivered_us
    done = await hub.commands.acknowledge("pump", command.id, ok=True, result=None)
    assert (done.status, done.delivered_us) == (CommandStatus.ACKED, delivered.delivered_us)


async def test_a_pending_command_whose_device_went_offline_becomes_queued(hub: Hub) -> None:
    await add_devices(hub, "pump", "fan")
    waiting = await send(hub, "pump")
    going = await send(hub, "fan")
    assert waiting.status is CommandStatus.PENDING

    await hub.devices.report_presence("pump", online=False, live=True)
    claimed = await hub.commands.claim_due()

    assert [c.id for c in claimed] == [going.id]
    assert (await hub.commands.get("pump", waiting.id)).status is CommandStatus.QUEUED


async def test_only_a_sent_command_can_be_delivered(hub: Hub) -> None:
    await add_devices(hub, "pump")
    await add_devices(hub, "fan", online=False)
    pending, queued = await send(hub, "pump"), await send(hub, "fan")

    assert await hub.commands.delivered("pump", pending.id) is None
    assert await hub.commands.delivered("fan", queued.id) is None
    await hub.commands.claim_due()
    await hub.commands.acknowledge("pump", pending.id, ok=True, result=None)
    # The answer overtook the PUBACK: acked stays acked.
    assert await hub.commands.delivered("pump", pending.id) is None
    assert (await hub.commands.get("pump", pending.id)).status is CommandStatus.ACKED


async def test_bulk_queues_for_the_offline_devices_and_the_batch_says_so(hub: Hub) -> None:
    await add_devices(hub, "on-1")
    await add_devices(hub, "off-1", online=False)

    _, made = await hub.commands.send_bulk(
        device_ids=["on-1", "off-1"], attributes=None, name="reboot", params={}, ttl_s=60
    )

    assert {c.device_id: c.status for c in made} == {
        "on-1": CommandStatus.PENDING,
        "off-1": CommandStatus.QUEUED,
    }
    assert [c.device_id for c in await hub.commands.claim_due()] == ["on-1"]


async def test_wake_ends_the_dispatchers_wait(hub: Hub) -> None:
    await hub.commands.wait_due(0.001)

    hub.commands.wake()

    await asyncio.wait_for(hub.commands.wait_due(60), timeout=5)
