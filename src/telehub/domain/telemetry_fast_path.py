"""The fast decoder of the telemetry bodies devices and gateways send most.

A message or a list of them, numbers only, ``ts`` absent or epoch milliseconds:
decoded with orjson and no pydantic, at a fraction of the reference model's
cost per reading (:mod:`telehub.domain.telemetry`). It accepts only what the
model accepts and yields exactly what the model would; for anything else it
returns None and the model decides, with its errors. tests/domain checks that
the two agree, by property tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from telehub.domain.readings import Reading, Telemetry, to_micros
from telehub.domain.rules import (
    KNOWN_METRIC_NAMES,
    TimeWindow,
    all_finite_numbers,
    is_finite,
    is_metric_name,
)

_new_tuple = tuple.__new__


def decode_simple_body(
    device_id: str,
    raw: bytes | str,
    *,
    received_at: datetime,
    max_batch_readings: int,
    max_future_skew: float,
) -> Telemetry | None:
    """The bodies devices and gateways send most — a message or a list of them,
    numbers only, ts absent or epoch ms — decoded without the validator, at a
    fraction of its cost per reading.

    Only input the validator accepts, decoded to exactly what it would produce
    (the same timestamp conversion, the same rules); anything else returns None
    and the validator decides, with its errors. A property test checks the two
    agree.
    """
    window = TimeWindow.after(to_micros(received_at), max_future_skew)
    return decode_simple_body_in(device_id, raw, window, max_batch_readings)


def decode_simple_body_in(
    device_id: str, raw: bytes | str, window: TimeWindow, max_batch_readings: int
) -> Telemetry | None:
    """:func:`decode_simple_body` in a window the caller built: parse_telemetry_json
    builds one for both decoders."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    messages = body if type(body) is list else [body]
    if not messages:
        return None
    readings: list[Reading] = []
    total = 0.0
    for message in messages:
        part = _simple_readings(device_id, message, window, readings)
        if part is None or len(readings) > max_batch_readings:
            return None
        total += part
    # The finiteness rule for the whole body at once, by the sum of its numbers (orjson
    # yields no NaN or infinity today; the rule is checked all the same).
    if not is_finite(total) and not all_finite_numbers([r.value for r in readings]):
        return None
    return Telemetry(device_id, tuple(readings), ())


def _simple_readings(
    device_id: str, message: Any, window: TimeWindow, out: list[Reading]
) -> float | None:
    """Append one simple message's readings to ``out``; the sum of its numbers, or
    None if it is not simple (or not valid: the validator will say why).

    The caller checks the sums of all messages at once.
    """
    if type(message) is not dict or not 1 <= len(message) <= 2:
        return None
    values = message.get("values")
    if type(values) is not dict or not values:
        return None
    ts = message.get("ts")
    if len(message) == 2 and "ts" not in message:
        return None
    if ts is None:
        ts_us = window.received_us
    elif type(ts) is int:
        # Integer microseconds, no datetime: what the validator computes, exactly.
        ts_us = ts * 1000
        if not window.admits(ts_us):
            return None
    else:
        return None
    known = KNOWN_METRIC_NAMES  # a name in it has matched: the rule's own shortcut
    total = 0.0
    for key, value in values.items():
        kind = type(value)
        if kind is not float and kind is not int:
            return None
        if key not in known and not is_metric_name(key):
            return None
        number = float(value)
        total += number
        # tuple.__new__ builds the Reading in C, as a series does in ``assemble``.
        out.append(_new_tuple(Reading, (device_id, key, ts_us, number)))
    return total
