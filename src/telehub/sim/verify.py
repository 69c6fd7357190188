"""After a run: does the hub hold what the transport acknowledged?

An acknowledgement is not always the hub's: on MQTT it is the broker's, and a
broker that is not the hub's (another program on the port the simulator
used) acknowledges every message and stores none. So once a run is over the
simulator reads back, device by device, how many readings the hub stored
with the run's timestamps (``GET …/telemetry?interval=1d&agg=count`` over the
run's span, as the benchmarks count) and compares them with what was
acknowledged. An external broker acknowledges before the hub commits, so a
shortfall is read again until it is made up or stops shrinking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from telehub.client.http_async import AsyncClient
from telehub.sim.runner import SimConfig
from telehub.sim.stats import Stats

# Devices counted at once: as provisioning, quick without flooding the API.
_WINDOW = 16
# A shortfall that has not shrunk for this long will not be made up.
_QUIET_S = 2.0
_POLL_S = 0.25
# Readings are stamped by the simulator's clock, the span by the same clock: a margin
# covers only the rounding of the query's bounds.
_MARGIN = timedelta(seconds=1)


async def stored_by_device(
    client: AsyncClient, device_ids: list[str], *, start: datetime, end: datetime
) -> dict[str, int]:
    """Readings the hub holds for each device, every metric, stamped in [start, end]."""
    counts: dict[str, int] = {}
    pending = iter(device_ids)

    async def worker() -> None:
        for device_id in pending:
            series = await client.query(
                device_id, start=start - _MARGIN, end=end + _MARGIN, interval="1d", agg="count"
            )
            counts[device_id] = sum(
                round(p.value) for points in series.series.values() for p in points
            )

    async with asyncio.TaskGroup() as group:
        for n in range(min(_WINDOW, len(device_ids))):
            group.create_task(worker(), name=f"sim-verify-{n}")
    return counts


def shortfall(acknowledged: Mapping[str, int], stored: Mapping[str, int]) -> dict[str, int]:
    """Acknowledged readings the hub does not hold, by device."""
    missing = {d: n - stored.get(d, 0) for d, n in acknowledged.items()}
    return {d: n for d, n in missing.items() if n > 0}


async def check_stored(
    client: AsyncClient, stats: Stats, *, start: datetime, end: datetime, within: float
) -> None:
    """Fill in ``stats.readings_stored`` and ``stats.missing`` from the hub.

    Waits at most ``within`` seconds for a shortfall to be made up, and less when
    it stops shrinking.
    """
    acknowledged = {d: n for d, n in stats.acknowledged_by_device.items() if n}
    stored: dict[str, int] = {}
    missing = dict(acknowledged)
    deadline = time.monotonic() + within
    progress = time.monotonic()
    while True:
        stored |= await stored_by_device(client, sorted(missing), start=start, end=end)
        left = shortfall(acknowledged, stored)
        now = time.monotonic()
        if sum(left.values()) < sum(missing.values()):
            progress = now
        missing = left
        if not missing or now > deadline or now - progress > _QUIET_S:
            break
        await asyncio.sleep(_POLL_S)
    stats.readings_stored = sum(stored.values())
    stats.missing = missing


async def check_run(config: SimConfig, stats: Stats) -> str | None:
    """Read back what the finished run stored; why it is not whole, or None.

    ``stats`` gets ``readings_stored`` and ``missing``. When MQTT readings are
    missing and the broker used is not the hub's, the answer says where the hub's is.
    """
    if stats.began_at is None or stats.ended_at is None:
        raise ValueError("check_run needs the stats of a run that took place")
    async with AsyncClient(config.url, token=config.token, verify=config.verify) as client:
        await check_stored(
            client, stats, start=stats.began_at, end=stats.ended_at, within=config.timeout
        )
        problem = verdict(stats)
        if problem is None or not stats.missing or config.transport != "mqtt":
            return problem
        urls = (await client.info()).mqtt.urls
    if stats.endpoint not in urls:
        problem += f" (they went to {stats.endpoint}; the hub's MQTT broker is {urls[0]})"
    return problem


def verdict(stats: Stats) -> str | None:
    """Why the run is not whole, in one line; None when every message sent is stored."""
    problems: list[str] = []
    unacknowledged = stats.sent - stats.acknowledged
    if unacknowledged:
        problems.append(f"{unacknowledged} of {stats.sent} messages sent were not acknowledged")
    if stats.missing:
        lost = sum(stats.missing.values())
        worst = sorted(stats.missing.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{d} ({n})" for d, n in worst[:5])
        more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
        problems.append(
            f"{lost} of {stats.readings_acknowledged} acknowledged readings are not stored "
            f"by the hub, missing from {len(worst)} of {stats.devices} devices: {shown}{more}"
        )
    return "; ".join(problems) or None
