"""What the gRPC server tests share: polling, batches, a stoppable server, raw clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from telehub.client.grpc_calls import GrpcError, timestamp
from telehub.client.grpc_client import AsyncGrpcClient
from telehub.config import Settings
from telehub.core.telemetry import SeriesQuery
from telehub.grpc.server import grpc_running
from telehub.hub import Hub
from telehub.v1 import (
    commands_pb2,
    commands_pb2_grpc,
    devices_pb2,
    devices_pb2_grpc,
    live_pb2,
    live_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
)
from tests.conftest import PG_URL
from tests.grpc.conftest import at
from tests.support.tcp_proxy import TcpProxy

SERVICES = tuple(
    f"telehub.v1.{name}"
    for name in ("IngestService", "QueryService", "LiveService", "CommandService", "DeviceService")
)
PUBLISH = "/telehub.v1.IngestService/Publish"
PER_BATCH = 5
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    """Poll ``check`` (a health status, a metric: nothing to wait on) until it holds."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def health_of(client: AsyncGrpcClient) -> dict[str, str]:
    """The status of the server ("") and of each service (NOT_FOUND: one it does not know)."""
    found = {}
    for service in ("", *SERVICES):
        try:
            found[service] = await client.health(service)
        except GrpcError as exc:
            found[service] = exc.code.name
    return found


def samples(hub: Hub) -> Samples:
    text = generate_latest(hub.metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def calls(method: str, code: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("telehub_grpc_calls_total", (("code", code), ("method", method)))


def numbered(index: int, device_id: str = "dev-1") -> telemetry_pb2.ReadingBatch:
    """Batch ``index``: PER_BATCH readings of metric ``v``, all with value ``index``."""
    return telemetry_pb2.ReadingBatch(
        device_id=device_id,
        readings=[
            telemetry_pb2.Reading(metric="v", value=index, ts=timestamp(at(index * 10 + j)))
            for j in range(PER_BATCH)
        ],
    )


async def batches_stored(hub: Hub, metric: str = "v") -> list[float]:
    """The value (the batch number, for ``numbered``) of every stored reading, sorted."""
    window = SeriesQuery([metric], at(-3600), at(3600), None, None, 10_000, False)
    series = await hub.telemetry.query("dev-1", window)
    return sorted(p.value for p in series.get(metric, []))


@contextlib.asynccontextmanager
async def server_task(hub: Hub) -> AsyncIterator[tuple[str, Callable[[], asyncio.Task[None]]]]:
    """The server in a task, run as `telehub grpc` runs it; calling ``stop()`` begins its stop."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def serve() -> None:
        async with grpc_running(hub, host="127.0.0.1", port=0) as address:
            ready.set_result(str(address))
            await stop.wait()

    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(serve(), name="grpc-server")

        def stopping() -> asyncio.Task[None]:
            stop.set()
            return task

        try:
            yield await ready, stopping
        finally:
            stop.set()


async def slowly(
    count: int, sent: list[int], *, hold: asyncio.Event | None = None, hold_at: int = 5
) -> AsyncIterator[telemetry_pb2.ReadingBatch]:
    """Batches 0..count-1, 0.1 s apart, as a device trickling data would send them.

    With ``hold``, the stream also waits before batch ``hold_at`` until it is set: a test
    that must see the stream still open at some point says when it may go on, rather
    than hoping the machine is fast enough for 0.1 s gaps to cover what it checks.
    """
    for index in range(count):
        if hold is not None and index == hold_at:
            await hold.wait()
        yield numbered(index)
        sent.append(index)
        await asyncio.sleep(0.1)


async def received(hub: Hub, at_least: int) -> None:
    """Wait until the server has read ``at_least`` batches of the Publish stream."""

    async def enough() -> bool:
        labels = {"method": PUBLISH, "direction": "received"}
        value = hub.metrics.registry.get_sample_value("telehub_grpc_stream_messages_total", labels)
        return (value or 0) >= at_least

    await eventually(enough)


async def all_are(client: AsyncGrpcClient, status: str) -> bool:
    """Whether the server and every service report ``status``."""
    return set((await health_of(client)).values()) == {status}


@contextlib.asynccontextmanager
async def proxied(
    make_settings: Callable[..., Settings], **overrides: object
) -> AsyncIterator[tuple[TcpProxy, Settings]]:
    """Settings whose database is reached through a proxy the test can cut."""
    pg = make_url(PG_URL)
    async with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        url = pg.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield proxy, make_settings(database_url=url, **overrides)


async def next_status(watch: Any, *, until: str) -> str:
    """Statuses the Watch stream sends, read until ``until`` (each change is sent once)."""
    async with asyncio.timeout(15):
        while True:
            answer = await watch.read()
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            if status == until:
                return status


def reflected_round_trip(target: str, device: str, admin: str) -> dict[str, Any]:
    """What grpcurl does: learn the services from the server, then call them by path."""
    with grpc.insecure_channel(target) as channel:
        reflected = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(reflected)
        ingest = pool.FindServiceByName("telehub.v1.IngestService")
        query = pool.FindServiceByName("telehub.v1.QueryService")
        publish_batch = ingest.FindMethodByName("PublishBatch")
        latest = query.FindMethodByName("Latest")
        range_ = query.FindMethodByName("Range")

        def message(descriptor: Any) -> Any:
            return message_factory.GetMessageClass(descriptor)

        batch_type = message(publish_batch.input_type)
        request = batch_type(device_id="dev-r")
        for i, value in enumerate((20.5, 21.0)):
            reading = request.readings.add(metric="temperature", value=value)
            reading.ts.seconds = int(at(i).timestamp())
        summary = channel.unary_unary(
            f"/{ingest.full_name}/{publish_batch.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message(publish_batch.output_type).FromString,
        )(request, metadata=(("authorization", f"Bearer {device}"),), timeout=10)
        admin_auth = (("authorization", f"Bearer {admin}"),)
        newest = channel.unary_unary(
            f"/{query.full_name}/{latest.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message(latest.output_type).FromString,
        )(message(latest.input_type)(device_id="dev-r"), metadata=admin_auth, timeout=10)
        window = message(range_.input_type)(device_id="dev-r", metrics=["temperature"])
        window.start.seconds = int(at(-60).timestamp())
        window.end.seconds = int(at(60).timestamp())
        points = channel.unary_stream(
            f"/{query.full_name}/{range_.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message(range_.output_type).FromString,
        )(window, metadata=admin_auth, timeout=10)
        return {
            "services": set(reflected.get_services()),
            "ingest": {m.name: m.client_streaming for m in ingest.methods},
            "query": {m.name: m.server_streaming for m in query.methods},
            "summary": (summary.batches, summary.accepted),
            "latest": [(r.metric, r.value) for r in newest.readings],
            "range": [p.value for p in points],
        }


Metadata = tuple[tuple[str, str], ...]


async def every_service(
    channel: grpc.aio.Channel, metadata: Metadata
) -> dict[str, grpc.StatusCode]:
    """Call one method of every telehub service with ``metadata``; the status of each."""
    ingest = telemetry_pb2_grpc.IngestServiceStub(channel)
    query = telemetry_pb2_grpc.QueryServiceStub(channel)
    live = live_pb2_grpc.LiveServiceStub(channel)
    commands = commands_pb2_grpc.CommandServiceStub(channel)
    devices = devices_pb2_grpc.DeviceServiceStub(channel)
    options: dict[str, Any] = {"metadata": metadata, "timeout": 10}
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "PublishBatch": lambda: ingest.PublishBatch(numbered(0), **options),
        "Latest": lambda: query.Latest(telemetry_pb2.LatestRequest(device_id="dev-1"), **options),
        "Range": lambda: drain(
            query.Range(telemetry_pb2.RangeRequest(device_id="dev-1"), **options)
        ),
        "Subscribe": lambda: drain(live.Subscribe(live_pb2.SubscribeRequest(), **options)),
        "Send": lambda: commands.Send(
            commands_pb2.SendCommandRequest(device_id="dev-1", name="reboot"), **options
        ),
        "List": lambda: devices.List(devices_pb2.ListDevicesRequest(), **options),
    }
    codes = {}
    for name, attempt in attempts.items():
        try:
            await attempt()
            codes[name] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            codes[name] = exc.code()
    return codes


async def drain(stream: Any) -> list[object]:
    return [message async for message in stream]
