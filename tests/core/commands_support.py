"""What the command tests share: devices to send to, and reading back what is stored."""

from __future__ import annotations

from typing import Any

import pytest

from telehub.domain.commands import Command, CommandStatus, new_command_id
from telehub.errors import InvalidInput
from telehub.hub import Hub

SECOND_US = 1_000_000


async def add_devices(hub: Hub, *ids: str, online: bool = True, **attributes: Any) -> None:
    """Devices that reported ``online`` (the default: commands go out only to those)."""
    for device_id in ids:
        await hub.devices.create(device_id=device_id, name=None, attributes=attributes)
        if online:
            await hub.devices.report_presence(device_id, online=True, live=True)


async def send(hub: Hub, device_id: str = "pump", *, name: str = "reboot") -> Command:
    return await hub.commands.send(device_id, name=name, params={}, ttl_s=60)


async def stored(
    hub: Hub, device_id: str, *, created_us: int, ttl_s: int, n: int = 1
) -> list[Command]:
    """``n`` pending commands written straight to the store, all created at ``created_us``."""
    expires_us, pending = created_us + ttl_s * SECOND_US, CommandStatus.PENDING
    fields: tuple[Any, ...] = (device_id, "reboot", {}, pending, created_us, expires_us)
    commands = [Command(new_command_id(), *fields) for _ in range(n)]
    await hub.store.commands.add(commands)
    return commands


async def claim_at(hub: Hub, at_us: int) -> list[Command]:
    """What a bridge would claim at ``at_us``, sending only what is still unexpired then."""
    return await hub.store.commands.claim_due(now_us=at_us, expiring_after_us=at_us, limit=1000)


def pointers(caught: pytest.ExceptionInfo[InvalidInput]) -> list[str | None]:
    return [e.pointer for e in caught.value.errors]
