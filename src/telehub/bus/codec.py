"""Bus messages as bytes, for buses that cross processes.

Compact arrays rather than objects: a commit of 20,000 readings is one Redis
message, and it is decoded once in every process that subscribes. One JSON
object with one key: ``r`` (readings: per submission ``[device_id, readings]``,
or ``[device_id, readings, state]`` when it updated device state), ``e``
(events) or ``x`` (a revoked credential: ``[kind, id, keep]``, e.g.
``["device", "dev-1", null]``).
"""

from __future__ import annotations

from typing import Any

import orjson

from telehub.domain.live import (
    BusMessage,
    CredentialKind,
    Event,
    EventType,
    LiveReadings,
    LoggedEvents,
    Revoked,
)
from telehub.domain.readings import Reading, StateUpdate, Telemetry


def encode(message: BusMessage) -> bytes:
    if isinstance(message, LiveReadings):
        return orjson.dumps(
            {
                "c": message.committed_us,
                "r": [_submission(t) for t in message.items],
            }
        )
    if isinstance(message, Revoked):
        return orjson.dumps({"x": [message.kind.value, message.id, message.keep]})
    return orjson.dumps(
        {"e": [[e.id, e.type.value, e.device_id, e.at_us, e.data] for e in message.events]}
    )


def _submission(t: Telemetry) -> list[Any]:
    item: list[Any] = [t.device_id, [[r.metric, r.ts_us, r.value] for r in t.readings]]
    if t.state:
        item.append([[s.key, s.ts_us, s.value] for s in t.state])
    return item


def decode(data: bytes) -> BusMessage:
    """The inverse of :func:`encode`. Raises ValueError on anything else.

    Every field's type is checked: a message that decoded into wrong types would
    fail later, in a subscriber (a WebSocket pump, the event feed), not here.
    """
    body: Any = orjson.loads(data)
    if not isinstance(body, dict):
        raise ValueError("a bus message is a JSON object")
    if "r" in body:
        return LiveReadings(
            items=tuple(_telemetry(item) for item in _array(body["r"], "r")),
            committed_us=_int(body.get("c"), "c"),
        )
    if "e" in body:
        return LoggedEvents(tuple(_event(item) for item in _array(body["e"], "e")))
    if "x" in body:
        kind, credential_id, keep = _array(body["x"], "x", length=3)
        return Revoked(
            kind=CredentialKind(kind),
            id=_str(credential_id, "credential id"),
            keep=None if keep is None else _str(keep, "keep"),
        )
    raise ValueError("a bus message has readings (r), events (e) or a revocation (x)")


def _telemetry(item: Any) -> Telemetry:
    fields = _array(item, "r[]")
    if len(fields) not in (2, 3):
        raise ValueError("r[] is not an array of 2 or 3")
    device_id = _str(fields[0], "device id")
    states = _array(fields[2], "r[][2]") if len(fields) == 3 else []
    return Telemetry(
        device_id=device_id,
        readings=tuple(
            Reading(device_id, _str(m, "metric"), _int(ts, "ts"), _float(v, "value"))
            for m, ts, v in (_array(r, "reading", length=3) for r in _array(fields[1], "r[][1]"))
        ),
        state=tuple(
            StateUpdate(device_id, _str(key, "state key"), _int(ts, "ts"), value)
            for key, ts, value in (_array(s, "state", length=3) for s in states)
        ),
    )


def _event(item: Any) -> Event:
    event_id, event_type, device_id, at_us, data = _array(item, "e[]", length=5)
    if not isinstance(data, dict):
        raise ValueError("event data is not a JSON object")
    return Event(
        id=_int(event_id, "event id"),
        type=EventType(event_type),
        device_id=None if device_id is None else _str(device_id, "device id"),
        at_us=_int(at_us, "at"),
        data=data,
    )


def _array(value: Any, what: str, *, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        size = "" if length is None else f" of {length}"
        raise ValueError(f"{what} is not an array{size}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} is not an integer")
    return value


def _float(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{what} is not a number")
    return float(value)
