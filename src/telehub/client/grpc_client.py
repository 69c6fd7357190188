"""Typed gRPC clients, sync (``GrpcClient``) and ``grpc.aio`` (``AsyncGrpcClient``).

Method names match the HTTP SDKs where they overlap (``send_telemetry``,
``query``, ``latest``, ``subscribe``, ``send_command``, ``list_devices``);
results are the generated protobuf messages. A refused call raises
:class:`GrpcError` with the server's field violations, retry delay and, for
a Publish stream, the summary of what was committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import grpc
from grpc_health.v1 import health_pb2

from telehub.client import grpc_calls as calls
from telehub.client.grpc_calls import GrpcError, RangeOptions, SubscribeOptions, Values
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

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE = 8 * 1024 * 1024

__all__ = ["AsyncGrpcClient", "GrpcClient", "GrpcError"]


Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _health_check(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    # grpcio-health-checking's stub is untyped; the method is one line to declare.
    return channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


def _page_size(options: RangeOptions) -> RangeOptions:
    """What a next page repeats besides its token: the token holds the query."""
    return {"limit": options["limit"]} if "limit" in options else {}


class GrpcClient:
    """Blocking client on one channel (HTTP/2 connection reuse); a context manager."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        options = calls.channel_options(max_message_bytes)
        self._channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )
        self._ingest = telemetry_pb2_grpc.IngestServiceStub(self._channel)
        self._query = telemetry_pb2_grpc.QueryServiceStub(self._channel)
        self._live = live_pb2_grpc.LiveServiceStub(self._channel)
        self._commands = commands_pb2_grpc.CommandServiceStub(self._channel)
        self._devices = devices_pb2_grpc.DeviceServiceStub(self._channel)
        self._health = _health_check(self._channel)
        self._metadata = calls.metadata(token)
        self._timeout = timeout

    def send_telemetry(
        self, device_id: str, values: Values, *, ts: datetime | None = None
    ) -> telemetry_pb2.PublishSummary:
        """One set of values (numbers are readings, the rest state); answered after commit."""
        return self.publish_batch(calls.batch(device_id, values, ts=ts))

    def publish_batch(self, batch: telemetry_pb2.ReadingBatch) -> telemetry_pb2.PublishSummary:
        return self._unary(self._ingest.PublishBatch, batch)

    def publish(
        self, batches: Iterable[telemetry_pb2.ReadingBatch], *, timeout: float | None = None
    ) -> telemetry_pb2.PublishSummary:
        """Stream batches; the summary comes once every one it counts is committed."""
        try:
            return self._ingest.Publish(iter(batches), metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise calls.decode_error(exc) from None

    def query(self, device_id: str, **options: Unpack[RangeOptions]) -> list[telemetry_pb2.Point]:
        """One page of raw points, or of ``interval`` buckets aggregated by ``agg`` (see
        RangeOptions): at most ``limit`` per metric. When a metric has more, the last
        point's ``next_page_token``, as ``page_token``, asks for the rest."""
        request = calls.range_request(device_id, **options)
        return list(self._stream(self._query.Range, request, timeout=self._timeout))

    def query_all(
        self, device_id: str, **options: Unpack[RangeOptions]
    ) -> Iterator[telemetry_pb2.Point]:
        """Every point of the query, page after page (``limit`` is the page size)."""
        while True:
            last = None
            for last in self._stream(
                self._query.Range,
                calls.range_request(device_id, **options),
                timeout=self._timeout,
            ):
                yield last
            if last is None or not last.next_page_token:
                return
            options = {"page_token": last.next_page_token, **_page_size(options)}

    def latest(self, device_id: str) -> telemetry_pb2.LatestResponse:
        return self._unary(self._query.Latest, telemetry_pb2.LatestRequest(device_id=device_id))

    def subscribe(self, **options: Unpack[SubscribeOptions]) -> Iterator[live_pb2.LiveEvent]:
        """Live events until the iterator is closed (``break`` out of the loop)."""
        request = calls.subscribe_request(**options)
        return self._stream(self._live.Subscribe, request, timeout=None)

    def send_command(
        self, device_id: str, name: str, params: Mapping[str, Any] | None = None, *, ttl_s: int = 0
    ) -> commands_pb2.Command:
        return self._unary(
            self._commands.Send, calls.command_request(device_id, name, params, ttl_s)
        )

    def watch_command(self, device_id: str, command_id: str = "") -> Iterator[commands_pb2.Command]:
        """Status changes: of one command (ends after its final status) or of every command."""
        request = commands_pb2.WatchCommandsRequest(device_id=device_id, command_id=command_id)
        return self._stream(self._commands.Watch, request, timeout=None)

    def get_device(self, device_id: str) -> devices_pb2.Device:
        return self._unary(self._devices.Get, devices_pb2.GetDeviceRequest(device_id=device_id))

    def list_devices(
        self, *, attributes: Mapping[str, str] | None = None, page_size: int = 100
    ) -> Iterator[devices_pb2.Device]:
        """Every matching device, fetched a page at a time."""
        token = ""
        while True:
            page = self._unary(self._devices.List, calls.list_request(page_size, token, attributes))
            yield from page.devices
            token = page.next_page_token
            if not token:
                return

    def health(self, service: str = "") -> str:
        """``SERVING`` or ``NOT_SERVING`` (of the server, or of one service)."""
        answer = self._unary(self._health, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise calls.decode_error(exc) from None

    def _stream(
        self,
        method: grpc.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        *,
        timeout: float | None,
    ) -> Iterator[Resp]:
        call = method(request, metadata=self._metadata, timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise calls.decode_error(exc) from None
        finally:
            call.cancel()


class AsyncGrpcClient:
    """The same calls on ``grpc.aio``; use ``async with``."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        timeout: float | None = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        options = calls.channel_options(max_message_bytes)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._ingest = telemetry_pb2_grpc.IngestServiceStub(self._channel)
        self._query = telemetry_pb2_grpc.QueryServiceStub(self._channel)
        self._live = live_pb2_grpc.LiveServiceStub(self._channel)
        self._commands = commands_pb2_grpc.CommandServiceStub(self._channel)
        self._devices = devices_pb2_grpc.DeviceServiceStub(self._channel)
        self._health = _health_check(self._channel)
        self._metadata = calls.metadata(token)
        self._timeout = timeout

    async def send_telemetry(
        self, device_id: str, values: Values, *, ts: datetime | None = None
    ) -> telemetry_pb2.PublishSummary:
        return await self.publish_batch(calls.batch(device_id, values, ts=ts))

    async def publish_batch(
        self, batch: telemetry_pb2.ReadingBatch
    ) -> telemetry_pb2.PublishSummary:
        return await self._unary(self._ingest.PublishBatch, batch)

    async def publish(
        self,
        batches: AsyncIterable[telemetry_pb2.ReadingBatch] | Iterable[telemetry_pb2.ReadingBatch],
        *,
        timeout_seconds: float | None = None,
    ) -> telemetry_pb2.PublishSummary:
        """Stream batches; the summary comes once every one it counts is committed."""
        try:
            return await self._ingest.Publish(
                batches,  # type: ignore[arg-type]  # grpc.aio takes async iterables too
                metadata=self._metadata,
                timeout=timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise calls.decode_error(exc) from None

    async def query(
        self, device_id: str, **options: Unpack[RangeOptions]
    ) -> list[telemetry_pb2.Point]:
        request = calls.range_request(device_id, **options)
        return [p async for p in self._stream(self._query.Range, request, self._timeout)]

    async def query_all(
        self, device_id: str, **options: Unpack[RangeOptions]
    ) -> AsyncIterator[telemetry_pb2.Point]:
        """Every point of the query, page after page (``limit`` is the page size)."""
        while True:
            last = None
            request = calls.range_request(device_id, **options)
            async for last in self._stream(self._query.Range, request, self._timeout):
                yield last
            if last is None or not last.next_page_token:
                return
            options = {"page_token": last.next_page_token, **_page_size(options)}

    async def latest(self, device_id: str) -> telemetry_pb2.LatestResponse:
        return await self._unary(
            self._query.Latest, telemetry_pb2.LatestRequest(device_id=device_id)
        )

    def subscribe(self, **options: Unpack[SubscribeOptions]) -> AsyncIterator[live_pb2.LiveEvent]:
        request = calls.subscribe_request(**options)
        return self._stream(self._live.Subscribe, request, None)

    async def send_command(
        self, device_id: str, name: str, params: Mapping[str, Any] | None = None, *, ttl_s: int = 0
    ) -> commands_pb2.Command:
        return await self._unary(
            self._commands.Send, calls.command_request(device_id, name, params, ttl_s)
        )

    def watch_command(
        self, device_id: str, command_id: str = ""
    ) -> AsyncIterator[commands_pb2.Command]:
        request = commands_pb2.WatchCommandsRequest(device_id=device_id, command_id=command_id)
        return self._stream(self._commands.Watch, request, None)

    async def get_device(self, device_id: str) -> devices_pb2.Device:
        return await self._unary(
            self._devices.Get, devices_pb2.GetDeviceRequest(device_id=device_id)
        )

    async def list_devices(
        self, *, attributes: Mapping[str, str] | None = None, page_size: int = 100
    ) -> AsyncIterator[devices_pb2.Device]:
        token = ""
        while True:
            page = await self._unary(
                self._devices.List, calls.list_request(page_size, token, attributes)
            )
            for device in page.devices:
                yield device
            token = page.next_page_token
            if not token:
                return

    async def health(self, service: str = "") -> str:
        answer = await self._unary(self._health, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req
    ) -> Resp:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise calls.decode_error(exc) from None

    async def _stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        call_timeout: float | None,
    ) -> AsyncIterator[Resp]:
        call = method(request, metadata=self._metadata, timeout=call_timeout)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise calls.decode_error(exc) from None
        finally:
            call.cancel()
