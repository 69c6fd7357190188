"""How a simulated reading reaches the hub: the transport seam, plus HTTP and gRPC.

A transport is an async context manager whose ``send`` returns once the hub
acknowledged the message, or raises. Every message carries its own device's
token, as a real device would: the operator's token only provisions. HTTP
shares one aiohttp connection pool and gRPC one channel across the fleet (a
pool per device would cost a pool each), the token going with each request;
MQTT (mqtt.py) logs every device in with its own token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import grpc
import orjson

from telehub.client import grpc_calls, http_calls
from telehub.client.errors import ApiError, ClientError, ConnectionFailed, api_error
from telehub.client.grpc_calls import GrpcError
from telehub.client.tls import Verify, aiohttp_ssl
from telehub.v1 import telemetry_pb2_grpc

Values = dict[str, float]


@dataclass(frozen=True, slots=True)
class SimDevice:
    device_id: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Ack:
    """What the hub confirmed for one message: readings stored, of which resends."""

    readings: int
    duplicates: int = 0


class Transport(Protocol):
    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack: ...

    async def serve(self) -> None:
        """Work the transport does beside sending (answering commands), until cancelled."""
        ...


def error_kind(exc: BaseException) -> str:
    """A short, stable name for an error, to count errors by kind."""
    if isinstance(exc, ApiError):
        return f"http_{exc.status}"
    if isinstance(exc, GrpcError):
        return f"grpc_{exc.code.name.lower()}"
    if isinstance(exc, ClientError):
        return type(exc).__name__.lower()
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "connection"
    return type(exc).__name__.lower()


class HttpTransport:
    """POST /api/v1/devices/{id}/telemetry; acknowledged = 202 with accepted/duplicates.

    One try per message (retries would hide errors and skew latency); errors are
    the SDK's (:mod:`telehub.client.errors`), so they count by the same kinds.
    """

    def __init__(self, url: str, *, window: int, timeout: float, verify: Verify = True) -> None:
        self._base = url.rstrip("/")
        self._ssl = aiohttp_ssl(verify)  # a bad CA file fails here, before any message
        self._window = window
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # As many connections as messages in flight: none waits for a connection.
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=self._window, ssl=self._ssl),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def serve(self) -> None:
        return

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack:
        assert self._session is not None, "use the transport with `async with`"
        call = http_calls.send_telemetry(device.device_id, values, ts)
        headers = {"Authorization": f"Bearer {device.token}", "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self._base + call.path, data=orjson.dumps(call.json), headers=headers
            ) as response:
                status, body = response.status, await _json(response)
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(f"POST {call.path}: {exc}") from None
        if status >= 400 or body is None:
            raise api_error(status, body, http_calls.retry_after(retry_after))
        answer = call.read(body)
        return Ack(readings=answer.accepted + answer.duplicates, duplicates=answer.duplicates)


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return orjson.loads(await response.read())
    except orjson.JSONDecodeError:
        return None


class GrpcTransport:
    """IngestService.PublishBatch; acknowledged = the PublishSummary, rejected counted as error."""

    def __init__(self, target: str, *, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> Self:
        self._channel = grpc.aio.insecure_channel(self._target)
        self._publish = telemetry_pb2_grpc.IngestServiceStub(self._channel).PublishBatch
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def serve(self) -> None:
        return

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack:
        batch = grpc_calls.batch(device.device_id, values, ts=ts)
        try:
            summary = await self._publish(
                batch, metadata=grpc_calls.metadata(device.token), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise grpc_calls.decode_error(exc) from None
        if summary.rejected:
            raise RejectedByHub(f"{summary.rejected} values rejected")
        return Ack(
            readings=int(summary.accepted + summary.duplicates), duplicates=int(summary.duplicates)
        )


class RejectedByHub(Exception):
    """The hub answered but refused the message's values."""
