"""Python clients of telehub: the REST SDKs (sync and async), gRPC, and the live feeds."""

from __future__ import annotations

from telehub.client.errors import (
    ApiError,
    CertificateRejected,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LiveClosed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    UnreadableAnswer,
    ValidationFailed,
    WaitTimedOut,
)
from telehub.client.http_async import AsyncClient
from telehub.client.http_calls import RetryPolicy
from telehub.client.http_client import Client
from telehub.client.sse import ServerSentEvent, SseDecoder, follow_events
from telehub.client.ws import tail_readings

__all__ = [
    "ApiError",
    "AsyncClient",
    "CertificateRejected",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "LiveClosed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RetryPolicy",
    "ServerSentEvent",
    "SseDecoder",
    "Unauthorized",
    "UnreadableAnswer",
    "ValidationFailed",
    "WaitTimedOut",
    "follow_events",
    "tail_readings",
]
