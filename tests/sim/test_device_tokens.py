"""The simulator sends each device's telemetry with that device's own token.

The operator's (admin) token provisions the fleet and nothing else: the hub
must see every simulated message come from the device it is for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from telehub.core.ingest import IngestResult, Ticket
from telehub.domain.devices import Principal
from telehub.domain.readings import Telemetry
from telehub.grpc.server import grpc_running
from telehub.hub import Hub
from telehub.sim.runner import SimConfig, TransportName, provision_fleet, simulate
from telehub.sim.transports import GrpcTransport, HttpTransport, SimDevice, Transport, error_kind
from tests.live.support import LiveServer, live_server
from tests.sim.test_runs import assert_clean_run, stored


@contextlib.asynccontextmanager
async def hub_on(transport: TransportName, hub: Hub) -> AsyncIterator[tuple[LiveServer, str]]:
    """The API (provisioning, HTTP ingest) and, for gRPC, the gRPC server too."""
    async with live_server(hub) as server:
        if transport == "grpc":
            async with grpc_running(hub, host="127.0.0.1", port=0) as address:
                yield server, str(address)
        else:
            yield server, ""


def record_callers(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Principal, str]]:
    """Who the hub saw send each ingested message, and for which device: what the ingest
    gate was handed, whether a request (``submit``) or a stream (``offer``) brought it."""
    callers: list[tuple[Principal, str]] = []
    gate = hub.ingest
    submit, offer = gate.submit, gate.offer

    async def submitting(principal: Principal, telemetry: Telemetry, **how: Any) -> IngestResult:
        callers.append((principal, telemetry.device_id))
        return await submit(principal, telemetry, **how)

    def offering(principal: Principal, telemetry: Telemetry) -> Ticket:
        callers.append((principal, telemetry.device_id))
        return offer(principal, telemetry)

    monkeypatch.setattr(gate, "submit", submitting)
    monkeypatch.setattr(gate, "offer", offering)
    return callers


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_each_message_is_sent_with_its_devices_own_token(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, transport: TransportName
) -> None:
    callers = record_callers(hub, monkeypatch)
    async with hub_on(transport, hub) as (server, grpc_target):
        config = SimConfig(
            devices=3, rate=30, duration=1, transport=transport, token=server.admin,
            url=server.base, grpc_target=grpc_target or "127.0.0.1:1", prefix="simt", seed=4,
        )  # fmt: skip
        stats = await simulate(config)
    assert_clean_run(stats, config)
    assert len(callers) == stats.acknowledged
    # An API token's principal has no device; a device token's is its device.
    assert [p.device_id for p, _ in callers] == [device for _, device in callers]
    assert all(p.scope is None for p, _ in callers)
    assert {device for _, device in callers} == {"simt-1", "simt-2", "simt-3"}
    assert await stored(hub, "simt", 3) == stats.readings_acknowledged


@pytest.mark.parametrize(
    ("transport", "refused"), [("http", "http_403"), ("grpc", "grpc_permission_denied")]
)
async def test_a_device_token_is_refused_for_another_device(
    hub: Hub, transport: TransportName, refused: str
) -> None:
    async with hub_on(transport, hub) as (server, grpc_target):
        config = SimConfig(
            devices=2, rate=1, duration=1, transport=transport, token=server.admin,
            url=server.base, grpc_target=grpc_target or "127.0.0.1:1", prefix="simx",
        )  # fmt: skip
        one, two = await provision_fleet(config)
        sender: Transport = (
            HttpTransport(server.base, window=4, timeout=10)
            if transport == "http"
            else GrpcTransport(grpc_target, timeout=10)
        )
        now = datetime.now(UTC)
        async with sender:
            ack = await sender.send(one, {"temperature": 21.5}, now)
            with pytest.raises(Exception) as caught:  # noqa: PT011 - the kind is checked below
                await sender.send(SimDevice(one.device_id, two.token), {"temperature": 1.0}, now)
    assert ack.readings == 1
    assert error_kind(caught.value) == refused
