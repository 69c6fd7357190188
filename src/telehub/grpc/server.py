"""The grpc.aio server: servicers, health, reflection, limits and a graceful stop.

Runs inside ``telehub serve`` and alone as ``telehub grpc`` (N of them behind
an L7 balancer). The port is bound without SO_REUSEPORT, so a port already
in use is an error naming the setting instead of two servers sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from telehub.errors import ConfigError
from telehub.grpc.commands import CommandServicer
from telehub.grpc.ingest import IngestServicer
from telehub.grpc.live import LiveServicer
from telehub.grpc.observe import Observer
from telehub.grpc.query import DeviceServicer, QueryServicer
from telehub.grpc.streams import LiveStreams
from telehub.hub import Hub
from telehub.listeners import bind
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

log = logging.getLogger(__name__)

SERVICES = tuple(
    d.services_by_name[name].full_name
    for d, name in (
        (telemetry_pb2.DESCRIPTOR, "IngestService"),
        (telemetry_pb2.DESCRIPTOR, "QueryService"),
        (live_pb2.DESCRIPTOR, "LiveService"),
        (commands_pb2.DESCRIPTOR, "CommandService"),
        (devices_pb2.DESCRIPTOR, "DeviceService"),
    )
)


@dataclass(frozen=True, slots=True)
class GrpcAddress:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@contextlib.asynccontextmanager
async def grpc_running(
    hub: Hub, *, host: str | None = None, port: int | None = None
) -> AsyncIterator[GrpcAddress]:
    """Serve gRPC until exit; then refuse new calls and give running ones the grace period."""
    settings = hub.settings
    host = settings.grpc_host if host is None else host
    port = settings.grpc_port if port is None else port
    size = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        interceptors=[Observer(hub.metrics)],
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),
        ],
    )
    ingest = IngestServicer(
        gate=hub.ingest,
        sessions=hub.sessions,
        stream_window_readings=settings.grpc_stream_window_readings,
    )
    telemetry_pb2_grpc.add_IngestServiceServicer_to_server(ingest, server)
    query = QueryServicer(auth=hub.auth, telemetry=hub.telemetry)
    telemetry_pb2_grpc.add_QueryServiceServicer_to_server(query, server)
    streams = LiveStreams(hub.bus, hub.sessions)
    live = LiveServicer(auth=hub.auth, streams=streams)
    live_pb2_grpc.add_LiveServiceServicer_to_server(live, server)
    commands = CommandServicer(
        auth=hub.auth, commands=hub.commands, devices=hub.devices, streams=streams
    )
    commands_pb2_grpc.add_CommandServiceServicer_to_server(commands, server)
    devices = DeviceServicer(auth=hub.auth, devices=hub.devices)
    devices_pb2_grpc.add_DeviceServiceServicer_to_server(devices, server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        (
            *SERVICES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = GrpcAddress(host, port)
    if port:
        # Probe first: a taken port is then our one-line error, before gRPC core logs its own.
        bind(host, port, setting="TELEHUB_GRPC_PORT", flag="--grpc-port").close()
    try:
        bound = server.add_insecure_port(str(address))
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise ConfigError(
            f"{address} is already in use (or cannot be bound); "
            "choose another port with TELEHUB_GRPC_PORT or --grpc-port"
        )
    address = GrpcAddress(host, bound)
    for name in ("", *SERVICES):  # until the database has answered once
        await checker.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    watcher = asyncio.create_task(_watch_store(hub, checker), name="grpc-health")
    try:
        yield address
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await checker.enter_graceful_shutdown()
        # Live streams never finish: end them now, with UNAVAILABLE (subscribe again).
        streams.close()
        # New calls are refused at once; running ones (a Publish stream) may finish.
        await server.stop(settings.grpc_grace_seconds)


async def _watch_store(hub: Hub, checker: health.aio.HealthServicer) -> None:
    """SERVING while the database answers, NOT_SERVING while it does not."""
    serving: bool | None = None
    while True:
        try:
            async with asyncio.timeout(hub.settings.grpc_health_interval_seconds):
                await hub.health.ping()
            now = True
        except Exception as exc:
            now = False
            if serving is not False:
                log.warning("gRPC health: the database is unreachable (%s)", exc)
        if now != serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if now
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", *SERVICES):
                await checker.set(name, status)
            serving = now
        await asyncio.sleep(hub.settings.grpc_health_interval_seconds)
