"""The gRPC server as operators and tool users meet it.

Health (and its link to the database), reflection for clients without stubs,
call metrics, graceful shutdown, a taken port, the message size limit and the
bearer-token check on every service.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2

from telehub.client.grpc_calls import GrpcError, batch, timestamp
from telehub.client.grpc_client import AsyncGrpcClient
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.errors import ConfigError
from telehub.grpc.server import grpc_running
from telehub.hub import Hub, open_hub
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import GrpcHub, at, grpc_hub_with, refused, serve_grpc
from tests.grpc.server_support import (
    PER_BATCH,
    PUBLISH,
    SERVICES,
    Metadata,
    all_are,
    batches_stored,
    calls,
    eventually,
    every_service,
    health_of,
    next_status,
    numbered,
    proxied,
    received,
    reflected_round_trip,
    samples,
    server_task,
    slowly,
)

POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.services)]
)


async def test_health_is_serving_for_the_server_and_every_service(grpc_hub: GrpcHub) -> None:
    async with grpc_hub.client() as client:
        await eventually(lambda: all_are(client, "SERVING"))
        assert await client.health("") == "SERVING"
        assert await client.health("telehub.v1.IngestService") == "SERVING"
        await refused(client.health("telehub.v1.NoSuchService"), grpc.StatusCode.NOT_FOUND)


@POSTGRES_ONLY
async def test_health_is_not_serving_while_the_database_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    async with (
        proxied(make_settings, grpc_health_interval_seconds=0.2) as (proxy, settings),
        open_hub(settings) as hub,
        serve_grpc(hub) as running,
        running.client() as client,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )(health_pb2.HealthCheckRequest(service="telehub.v1.IngestService"))
        await eventually(lambda: all_are(client, "SERVING"))
        assert await next_status(watch, until="SERVING") == "SERVING"

        await proxy.cut()
        await eventually(lambda: all_are(client, "NOT_SERVING"))
        assert await next_status(watch, until="NOT_SERVING") == "NOT_SERVING"

        await proxy.restore()
        await eventually(lambda: all_are(client, "SERVING"))
        assert await next_status(watch, until="SERVING") == "SERVING"
        device = await running.device("dev-1")
        async with running.client(device) as publisher:
            assert (await publisher.send_telemetry("dev-1", {"v": 1.0})).accepted == 1
        watch.cancel()


@POSTGRES_ONLY
async def test_health_is_not_serving_before_the_database_has_answered(
    make_settings: Callable[..., Settings],
) -> None:
    """A database that hangs at startup: no balancer may be told SERVING meanwhile."""
    async with proxied(make_settings) as (proxy, settings), open_hub(settings) as hub:
        await proxy.stall()
        async with (
            grpc_running(hub, host="127.0.0.1", port=0) as address,
            AsyncGrpcClient(str(address)) as client,
        ):
            assert await health_of(client) == dict.fromkeys(("", *SERVICES), "NOT_SERVING")


@POSTGRES_ONLY
async def test_a_call_while_the_database_is_unreachable_is_unavailable(
    make_settings: Callable[..., Settings],
) -> None:
    """UNAVAILABLE is the status clients retry on; the call works once the database is back."""
    async with (
        proxied(make_settings) as (proxy, settings),
        open_hub(settings) as hub,
        serve_grpc(hub) as running,
        running.client() as client,
    ):
        await running.device("dev-1")
        await proxy.cut()
        await refused(client.latest("dev-1"), grpc.StatusCode.UNAVAILABLE)
        await proxy.restore()
        assert (await client.latest("dev-1")).device_id == "dev-1"


async def test_a_client_built_only_from_reflection_publishes_and_reads(
    grpc_hub: GrpcHub,
) -> None:
    device = await grpc_hub.device("dev-r")
    found = await asyncio.to_thread(reflected_round_trip, grpc_hub.target, device, grpc_hub.admin)
    assert {*SERVICES, "grpc.health.v1.Health"} <= found["services"]
    assert found["ingest"] == {"Publish": True, "PublishBatch": False}
    assert found["query"] == {"Range": True, "Latest": False}
    assert found["summary"] == (1, 2)
    assert found["latest"] == [("temperature", 21.0)]
    assert found["range"] == [20.5, 21.0]


async def test_metrics_count_calls_by_method_and_code_and_stream_messages(
    grpc_hub: GrpcHub,
) -> None:
    device = await grpc_hub.device("dev-1")
    async with grpc_hub.client(device) as publisher, grpc_hub.client() as admin:
        await publisher.send_telemetry("dev-1", {"v": 1.0}, ts=at(0))
        await publisher.send_telemetry("dev-1", {"v": 2.0}, ts=at(1))
        bad = batch("dev-1", {"v": float("nan")}, ts=at(2))
        await refused(publisher.publish_batch(bad), grpc.StatusCode.INVALID_ARGUMENT)
        async with AsyncGrpcClient(grpc_hub.target) as anonymous:
            await refused(anonymous.latest("dev-1"), grpc.StatusCode.UNAUTHENTICATED)
        summary = await publisher.publish([numbered(i) for i in range(1, 5)])
        assert summary.batches == 4
        points = await admin.query("dev-1", metrics=["v"], start=at(-60), end=at(3600))
        assert len(points) == 2 + 4 * PER_BATCH

    found = samples(grpc_hub.hub)
    ingest, query = "/telehub.v1.IngestService/", "/telehub.v1.QueryService/"
    assert found[calls(ingest + "PublishBatch", "OK")] == 2
    assert found[calls(ingest + "PublishBatch", "INVALID_ARGUMENT")] == 1
    assert found[calls(query + "Latest", "UNAUTHENTICATED")] == 1
    assert found[calls(PUBLISH, "OK")] == 1
    assert found[calls(query + "Range", "OK")] == 1
    messages = "telehub_grpc_stream_messages_total"
    assert found[(messages, (("direction", "received"), ("method", PUBLISH)))] == 4
    assert found[(messages, (("direction", "sent"), ("method", query + "Range")))] == len(points)
    assert found[("telehub_grpc_calls_in_flight", ())] == 0


async def test_shutdown_lets_a_running_stream_finish_and_refuses_new_calls(hub: Hub) -> None:
    _, device = await hub.devices.create(device_id="dev-1", name=None, attributes={})
    _, admin = await hub.tokens.create(name="shutdown", scope=Scope.ADMIN)
    sent: list[int] = []
    accepted: list[int] = []
    refusals: list[grpc.StatusCode] = []
    async with (
        server_task(hub) as (target, stop),
        AsyncGrpcClient(target, token=device) as publisher,
        AsyncGrpcClient(target, token=admin) as other,
    ):
        assert (await other.latest("dev-1")).device_id == "dev-1"
        hold = asyncio.Event()
        publishing = asyncio.create_task(publisher.publish(slowly(15, sent, hold=hold)))
        await received(hub, 3)
        stopped = stop()

        async def refuses(attempt: int) -> bool:
            late = batch("dev-1", {"late": attempt}, ts=at(attempt))
            try:
                # A call that races the stop may also be held until the grace period
                # ends and then dropped: given up on here (the last assertion checks
                # that it stored nothing), it counts as refused.
                await asyncio.wait_for(other.publish_batch(late), 2)
            except GrpcError as exc:
                refusals.append(exc.code)
                return True
            except TimeoutError:
                refusals.append(grpc.StatusCode.DEADLINE_EXCEEDED)
                return True
            accepted.append(attempt)
            return False

        attempts = iter(range(1000))
        await eventually(lambda: refuses(next(attempts)))
        # CANCELLED: the call raced the stop and was dropped before it ran.
        assert refusals[0] in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        assert not publishing.done(), "the stream should still be running"
        hold.set()
        summary = await asyncio.wait_for(publishing, 15)
        await asyncio.wait_for(stopped, 15)
    assert (summary.batches, summary.accepted) == (15, 15 * PER_BATCH)
    assert sent == list(range(15))
    assert await batches_stored(hub) == sorted(i for i in range(15) for _ in range(PER_BATCH))
    # A refused call did nothing: resending it elsewhere cannot double it.
    assert await batches_stored(hub, "late") == accepted


async def test_a_stream_outliving_the_grace_period_is_cut_and_loses_no_batch(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(grpc_grace_seconds=0.2)
    sent: list[int] = []
    async with open_hub(settings) as hub:
        _, device = await hub.devices.create(device_id="dev-1", name=None, attributes={})
        async with server_task(hub) as (target, stop):
            async with AsyncGrpcClient(target, token=device) as publisher:
                publishing = asyncio.create_task(publisher.publish(slowly(30, sent)))
                await received(hub, 3)
                await asyncio.wait_for(stop(), 15)
                with pytest.raises(GrpcError) as cut:
                    await asyncio.wait_for(publishing, 15)
            assert cut.value.code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
            assert len(sent) < 30
    async with open_hub(settings) as hub:
        stored = await batches_stored(hub)
        whole = sorted({*stored})
        # Every batch the server read is there, each whole and once.
        assert whole[:3] == [0, 1, 2]
        assert stored == sorted(i for i in whole for _ in range(PER_BATCH))
        # The client does not know what was kept: it resends all, and nothing doubles.
        async with server_task(hub) as (target, _), AsyncGrpcClient(target, token=device) as again:
            summary = await again.publish([numbered(i) for i in range(30)])
        assert (summary.accepted, summary.duplicates) == (
            30 * PER_BATCH - len(stored),
            len(stored),
        )
        assert await batches_stored(hub) == sorted(i for i in range(30) for _ in range(PER_BATCH))


async def test_a_taken_port_is_a_config_error_naming_the_setting_and_flag(hub: Hub) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            async with grpc_running(hub, host="127.0.0.1", port=port):
                pytest.fail("the server started on a port that is in use")
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "TELEHUB_GRPC_PORT" in str(caught.value)
    assert "--grpc-port" in str(caught.value)


async def test_a_message_over_the_size_limit_is_refused_and_stores_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    async with grpc_hub_with(make_settings, grpc_max_message_bytes=65536) as running:
        device = await running.device("dev-1")
        huge = telemetry_pb2.ReadingBatch(device_id="dev-1")
        for i in range(100_000):
            huge.readings.add(metric="v", value=1.0, ts=timestamp(at(i / 1000)))
        small = telemetry_pb2.ReadingBatch(device_id="dev-1")
        for i in range(1000):
            small.readings.add(metric="v", value=2.0, ts=timestamp(at(200 + i / 1000)))
        assert small.ByteSize() < 65536 < huge.ByteSize()
        async with running.client(device) as publisher:
            await refused(publisher.publish_batch(huge), grpc.StatusCode.RESOURCE_EXHAUSTED)
            assert (await publisher.publish_batch(small)).accepted == 1000
        assert [value for _, value in await running.stored("v")] == [2.0] * 1000


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer tha_not-a-real-token"),), (("authorization", "Basic xyz"),)],
    ids=["no-token", "unknown-token", "basic-scheme"],
)
async def test_every_service_refuses_a_caller_without_a_valid_bearer_token(
    grpc_hub: GrpcHub, metadata: Metadata
) -> None:
    await grpc_hub.device("dev-1")
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        codes = await every_service(channel, metadata)
    assert codes == dict.fromkeys(codes, grpc.StatusCode.UNAUTHENTICATED)
    assert len(codes) == 6


async def test_a_device_token_may_publish_but_not_query(grpc_hub: GrpcHub) -> None:
    device = await grpc_hub.device("dev-1")
    async with grpc_hub.client(device) as client:
        assert (await client.publish_batch(numbered(0))).accepted == PER_BATCH
        await refused(client.latest("dev-1"), grpc.StatusCode.PERMISSION_DENIED)
        await refused(
            client.query("dev-1", start=at(-60), end=at(60)), grpc.StatusCode.PERMISSION_DENIED
        )
