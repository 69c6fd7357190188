"""JSON frames of the live WebSocket, encoded once where clients share them.

Readings are encoded per submission and cached on the bus message; and since
every connection's sender wakes on the same clock tick, clients with the same
subscription get the same run of messages, so the whole frame (as the str the
ASGI server sends) is made once per tick for all of them (:class:`FrameCache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from telehub.domain.live import Event, Filter, LiveReadings
from telehub.domain.readings import Reading, StateUpdate, Telemetry, to_iso


def _reading(r: Reading) -> dict[str, Any]:
    return {"device_id": r.device_id, "metric": r.metric, "ts": to_iso(r.ts_us), "value": r.value}


def _item_bytes(message: LiveReadings, index: int, item: Telemetry) -> bytes:
    key = f"r{index}"
    cached = message.wire.get(key)
    if cached is None:
        # The list's brackets are dropped so items join with commas into any frame.
        cached = orjson.dumps([_reading(r) for r in item.readings])[1:-1]
        message.wire[key] = cached
    return cached


def readings_parts(messages: Iterable[LiveReadings], want: Filter) -> list[bytes]:
    """The readings this subscription wants, as comma-joinable JSON fragments."""
    parts: list[bytes] = []
    for message in messages:
        for index, item in enumerate(message.items):
            if not item.readings or not want.wants_device(item.device_id):
                continue
            if want.metrics is None:
                parts.append(_item_bytes(message, index, item))
                continue
            chosen = [_reading(r) for r in item.readings if r.metric in want.metrics]
            if chosen:
                parts.append(orjson.dumps(chosen)[1:-1])
    return parts


def readings_frame(subscription_id: str | int, parts: list[bytes]) -> bytes:
    return b"".join(
        (
            b'{"type":"readings","id":',
            orjson.dumps(subscription_id),
            b',"readings":[',
            b",".join(parts),
            b"]}",
        )
    )


class FrameCache:
    """Readings frames by (messages, subscription id, filter), the newest few hundred."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._frames: dict[tuple[int, int, int, str | int, Filter], str | None] = {}

    def readings(
        self, messages: list[LiveReadings], subscription_id: str | int, want: Filter
    ) -> str | None:
        """The frame for these messages, or None when none of their readings is wanted."""
        key = (messages[0].seq, messages[-1].seq, len(messages), subscription_id, want)
        if key in self._frames:
            return self._frames[key]
        parts = readings_parts(messages, want)
        frame = readings_frame(subscription_id, parts).decode() if parts else None
        if len(self._frames) >= self._size:
            del self._frames[next(iter(self._frames))]
        self._frames[key] = frame
        return frame


def state_frame(subscription_id: str | int, item: Telemetry) -> bytes:
    """A device's state updates of one submission, each key's newest, as ``/latest`` shows
    them: ``{"key": {"ts", "value"}}``."""
    newest: dict[str, StateUpdate] = {}
    for update in item.state:
        seen = newest.get(update.key)
        if seen is None or update.ts_us >= seen.ts_us:
            newest[update.key] = update
    state = {k: {"ts": to_iso(u.ts_us), "value": u.value} for k, u in newest.items()}
    return orjson.dumps(
        {"type": "state", "id": subscription_id, "device_id": item.device_id, "state": state}
    )


def presence_frame(subscription_id: str | int, event: Event) -> bytes:
    return orjson.dumps({"type": "presence", "id": subscription_id, **event.data})


def command_frame(request_id: str | int | None, event: Event) -> bytes:
    return orjson.dumps({"type": "command_status", "id": request_id, **event.data})


def gap_frame(dropped: int | None, *, reason: str) -> bytes:
    return orjson.dumps({"type": "gap", "dropped": dropped, "reason": reason})


def reply(kind: str, request_id: str | int | None, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, "id": request_id, **fields})
