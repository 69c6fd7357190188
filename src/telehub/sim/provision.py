"""Provisioning the simulated devices through the REST API (``{prefix}-{n}``)."""

from __future__ import annotations

import asyncio

from telehub.client.errors import Conflict
from telehub.client.http_async import AsyncClient
from telehub.sim.transports import SimDevice

# Devices created at once: enough to be quick, few enough not to flood the API.
_PROVISION_WINDOW = 16


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n}" for n in range(1, count + 1)]


async def provision(client: AsyncClient, *, prefix: str, count: int) -> list[SimDevice]:
    """Create the devices, or take over existing ones by rotating their token.

    A fixed pool of workers takes ids from one iterator: tasks stay bounded
    whatever ``count`` is.
    """
    ids = device_ids(prefix, count)
    found: dict[str, SimDevice] = {}
    pending = iter(ids)

    async def worker() -> None:
        for device_id in pending:
            found[device_id] = await _one(client, device_id, prefix)

    async with asyncio.TaskGroup() as group:
        for n in range(min(_PROVISION_WINDOW, count)):
            group.create_task(worker(), name=f"sim-provision-{n}")
    return [found[d] for d in ids]


async def _one(client: AsyncClient, device_id: str, prefix: str) -> SimDevice:
    try:
        created = await client.create_device(
            device_id, attributes={"simulated": "true", "sim_prefix": prefix}
        )
        return SimDevice(device_id, created.token)
    except Conflict:
        # Its token is shown only at creation: a new one is the only way to learn one.
        rotated = await client.rotate_device_token(device_id)
        return SimDevice(device_id, rotated.token)
