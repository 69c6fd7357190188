"""Python clients of the telehub API (the live feeds now; the SDKs grow here)."""

from __future__ import annotations

from telehub.client.errors import ApiError, LiveClosed
from telehub.client.sse import ServerSentEvent, SseDecoder, follow_events
from telehub.client.ws import tail_readings

__all__ = [
    "ApiError",
    "LiveClosed",
    "ServerSentEvent",
    "SseDecoder",
    "follow_events",
    "tail_readings",
]
