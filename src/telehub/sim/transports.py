"""How a simulated reading reaches the hub: the transport seam, plus HTTP and gRPC.

A transport is an async context manager whose ``send`` returns once the hub
acknowledged the message, or raises. HTTP and gRPC share one connection pool
authenticated by the operator's write token (one client per device would cost
a pool each); MQTT (mqtt.py) logs every device in with its own token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from telehub.client.errors import ApiError, ClientError
from telehub.client.grpc_calls import GrpcError
from telehub.client.grpc_client import AsyncGrpcClient
from telehub.client.http_async import AsyncClient
from telehub.client.http_calls import RetryPolicy

Values = dict[str, float]


@dataclass(frozen=True, slots=True)
class SimDevice:
    device_id: str
    token: str


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


C = TypeVar("C", AsyncClient, AsyncGrpcClient)


class _ClientTransport(Generic[C]):
    """A transport over one SDK client, closed on exit; devices get no command channel."""

    _client: C

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()

    async def serve(self) -> None:
        return


class HttpTransport(_ClientTransport[AsyncClient]):
    """POST /api/v1/devices/{id}/telemetry; acknowledged = 202 with accepted/duplicates."""

    def __init__(self, url: str, *, token: str, window: int, timeout: float) -> None:
        # The client's own retries would hide errors and skew latency: one try.
        self._client = AsyncClient(
            url, token=token, concurrency=window, timeout=timeout, retry=RetryPolicy(attempts=1)
        )

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack:
        answer = await self._client.send_telemetry(device.device_id, values, ts=ts)
        return Ack(readings=answer.accepted + answer.duplicates, duplicates=answer.duplicates)


class GrpcTransport(_ClientTransport[AsyncGrpcClient]):
    """IngestService.PublishBatch; acknowledged = the PublishSummary, rejected counted as error."""

    def __init__(self, target: str, *, token: str, timeout: float) -> None:
        self._client = AsyncGrpcClient(target, token=token, timeout=timeout)

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack:
        summary = await self._client.send_telemetry(device.device_id, values, ts=ts)
        if summary.rejected:
            raise RejectedByHub(f"{summary.rejected} values rejected")
        return Ack(
            readings=int(summary.accepted + summary.duplicates), duplicates=int(summary.duplicates)
        )


class RejectedByHub(Exception):
    """The hub answered but refused the message's values."""
