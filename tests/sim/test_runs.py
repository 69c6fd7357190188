"""Short simulator runs against a real hub on each transport (SQLite and PostgreSQL).

Every reading the simulator reports acknowledged must be stored; simulated MQTT
devices report their presence as real ones must.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from telehub.config import Settings
from telehub.core.ports import Aggregate, SeriesRange
from telehub.domain.commands import CommandStatus
from telehub.errors import Unauthenticated
from telehub.grpc.server import grpc_running
from telehub.hub import Hub, open_hub
from telehub.mqtt.service import mqtt_running
from telehub.sim.provision import device_ids
from telehub.sim.runner import SimConfig, provision_fleet, simulate
from telehub.sim.signals import MetricKind
from telehub.sim.stats import Stats
from tests.live.support import live_server
from tests.mqtt.support import eventually


async def stored(hub: Hub, prefix: str, devices: int) -> int:
    """Readings stored for the simulated devices, every metric, all time."""
    total = 0
    for device_id in device_ids(prefix, devices):
        for kind in MetricKind:
            series = SeriesRange(device_id, kind.value, 0, 2**62, 1)
            buckets = await hub.store.readings.buckets(series, width_us=2**62, agg=Aggregate.COUNT)
            total += int(buckets[0].value) if buckets else 0
    return total


def assert_clean_run(stats: Stats, config: SimConfig) -> None:
    summary = stats.summary()
    assert summary["errors"] == {}, summary
    assert stats.in_flight == 0
    assert stats.sent > 0.8 * config.rate * config.duration, summary
    assert stats.acknowledged == stats.sent
    assert stats.readings_acknowledged == stats.readings_sent
    assert stats.duplicates == 0
    assert summary["latency_ms"]["p50"] is not None
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    assert summary["achieved_rate"] > 0.5 * config.rate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_http_run_stores_every_acknowledged_reading(hub: Hub) -> None:
    async with live_server(hub) as server:
        config = SimConfig(
            devices=3, rate=25, duration=2, transport="http", token=server.admin,
            url=server.base, prefix="simh", seed=1, window=8,
        )  # fmt: skip
        stats = await simulate(config)
    assert_clean_run(stats, config)
    assert await stored(hub, "simh", 3) == stats.readings_acknowledged


async def test_grpc_run_stores_every_acknowledged_reading(hub: Hub) -> None:
    async with (
        live_server(hub) as server,
        grpc_running(hub, host="127.0.0.1", port=0) as address,
    ):
        config = SimConfig(
            devices=2, rate=25, duration=2, transport="grpc", token=server.admin,
            url=server.base, grpc_target=str(address), prefix="simg", seed=2, window=8,
        )  # fmt: skip
        stats = await simulate(config)
    assert_clean_run(stats, config)
    assert await stored(hub, "simg", 2) == stats.readings_acknowledged


async def test_existing_devices_are_reused_with_a_rotated_token(hub: Hub) -> None:
    _, old_token = await hub.devices.create(device_id="simr-1", name=None, attributes={})
    async with live_server(hub) as server:
        config = SimConfig(
            devices=2, rate=10, duration=1, token=server.admin, url=server.base, prefix="simr",
        )  # fmt: skip
        stats = await simulate(config)
    assert_clean_run(stats, config)
    with pytest.raises(Unauthenticated):  # taken over: its old token was rotated away
        await hub.auth.authenticate(old_token)
    assert await stored(hub, "simr", 2) == stats.readings_acknowledged


async def test_a_provisioned_fleet_runs_again_without_provisioning(hub: Hub) -> None:
    async with live_server(hub) as server:
        config = SimConfig(
            devices=2, rate=20, duration=1, token=server.admin, url=server.base, prefix="simf",
        )  # fmt: skip
        fleet = await provision_fleet(config)
        runs = [await simulate(config, devices=fleet) for _ in range(2)]
        with pytest.raises(ValueError, match="3 devices given"):
            await simulate(config, devices=[*fleet, fleet[0]])
    for stats in runs:  # a second provisioning would have rotated the fleet's tokens away
        assert_clean_run(stats, config)
    assert await stored(hub, "simf", 2) == sum(s.readings_acknowledged for s in runs)


async def test_mqtt_run_stores_every_acknowledged_reading_and_answers_commands(
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    settings = make_settings(mqtt_url="embedded", mqtt_embedded_port=port)
    async with open_hub(settings) as hub, mqtt_running(hub), live_server(hub) as server:
        config = SimConfig(
            devices=3, rate=20, duration=2.5, transport="mqtt", token=server.admin,
            url=server.base, mqtt_url=f"mqtt://127.0.0.1:{port}", prefix="simm", seed=3,
            window=8, fail_share=0.0, ack_delay=0.05,
        )  # fmt: skip
        stats = config.stats()
        run = asyncio.create_task(simulate(config, stats=stats))

        async def sending() -> bool:  # connected and subscribed: commands can be answered
            return stats.sent > 0

        await eventually(sending, within=10, what="the simulator to start sending")
        command = await hub.commands.send("simm-2", name="reboot", params={}, ttl_s=30)

        async def all_online() -> bool:  # each device said so, as a real one must
            return all([(await hub.devices.get(d)).online for d in device_ids("simm", 3)])

        await eventually(all_online, within=10, what="every simulated device online")
        await run
        assert_clean_run(stats, config)

        async def all_stored() -> bool:  # the PUBACK is the broker's: the commit follows
            return await stored(hub, "simm", 3) >= stats.readings_acknowledged

        await eventually(all_stored, within=10, what="every acknowledged reading stored")
        assert await stored(hub, "simm", 3) == stats.readings_acknowledged
        answered = await hub.commands.get("simm-2", command.id)

        async def all_offline() -> bool:  # a clean end says offline: the will is not sent
            return not any([(await hub.devices.get(d)).online for d in device_ids("simm", 3)])

        await eventually(all_offline, within=10, what="every simulated device offline")
    assert answered.status is CommandStatus.ACKED
    assert stats.commands_ok == 1
    assert stats.commands_error == 0
