"""Python clients of telehub: the REST SDKs (sync and async), gRPC, and the live feeds.

The errors load with the package; each client loads when it is first named
(``from telehub.client import Client`` imports requests, not aiohttp), so a
program or a CLI command that uses one client does not pay for the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from telehub.client.http_async import AsyncClient
    from telehub.client.http_calls import RetryPolicy
    from telehub.client.http_client import Client
    from telehub.client.sse import ServerSentEvent, SseDecoder, follow_events
    from telehub.client.ws import tail_readings

_LOADED_ON_USE = {
    "AsyncClient": "telehub.client.http_async",
    "RetryPolicy": "telehub.client.http_calls",
    "Client": "telehub.client.http_client",
    "ServerSentEvent": "telehub.client.sse",
    "SseDecoder": "telehub.client.sse",
    "follow_events": "telehub.client.sse",
    "tail_readings": "telehub.client.ws",
}


def __getattr__(name: str) -> Any:
    module = _LOADED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
