"""JSON frames of the live WebSocket, encoded once per message where clients share them.

Readings are encoded per submission and cached on the bus message, so a
client subscribed to everything gets its frame by joining bytes other
clients already paid for; only a metric filter makes a client encode its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from telehub.domain.live import Event, LiveReadings
from telehub.domain.readings import Reading, Telemetry, to_iso


@dataclass(frozen=True, slots=True)
class Filter:
    """What one subscription wants: None means every device, or every metric."""

    devices: frozenset[str] | None
    metrics: frozenset[str] | None

    def wants_device(self, device_id: str | None) -> bool:
        return self.devices is None or device_id in self.devices


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


def presence_frame(subscription_id: str | int, event: Event) -> bytes:
    return orjson.dumps({"type": "presence", "id": subscription_id, **event.data})


def command_frame(request_id: str | int | None, event: Event) -> bytes:
    return orjson.dumps({"type": "command_status", "id": request_id, **event.data})


def gap_frame(dropped: int | None, *, reason: str) -> bytes:
    return orjson.dumps({"type": "gap", "dropped": dropped, "reason": reason})


def reply(kind: str, request_id: str | int | None, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, "id": request_id, **fields})
