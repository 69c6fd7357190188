"""A key of a device is a metric or a state key, never both.

A number makes a reading and anything else state, so a value that is not a
number for a metric of the device (``"NaN"``, ``"21,5"`` from a decimal comma)
would silently become state under the metric's name, and the device's latest
values would then show the key twice. Such a value is refused instead,
pointing at it.

A metric of the device is one it has readings of (only storage knows those,
so the caller looks them up: only for the keys of a submission's state, which
most submissions have none of) or one the same submission gives a number.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from telehub.domain.readings import Telemetry
from telehub.domain.telemetry import excerpt, loc_to_pointer
from telehub.errors import FieldError, InvalidInput

NEEDS_A_NUMBER = "is a metric of this device and needs a number"
SEND_AS_READING = "is a metric of this device: send it as a reading, not as state"
# How much of a refused string value the detail quotes.
_QUOTED_CHARS = 40


def state_keys(telemetry: Telemetry) -> set[str]:
    """The keys a submission would store as state: the ones to look up."""
    return {update.key for update in telemetry.state}


def metric_state_refusal(telemetry: Telemetry, metrics: Collection[str]) -> InvalidInput | None:
    """InvalidInput pointing at each state value whose key is a metric of the device
    (``metrics``: those it has readings of), or None if there is none."""
    if not telemetry.state:
        return None
    known = set(metrics)
    known.update(reading.metric for reading in telemetry.readings)
    errors: list[FieldError] = []
    keys: list[str] = []
    for update in telemetry.state:
        if update.key not in known:
            continue
        if update.key not in keys:
            keys.append(update.key)
        errors.append(FieldError(detail=_detail(update.value), pointer=loc_to_pointer(update.at)))
    if not errors:
        return None
    names = ", ".join(repr(excerpt(key)) for key in keys)
    device = repr(telemetry.device_id)
    summary = (
        f"{names} is a metric of device {device} and needs a number"
        if len(keys) == 1
        else f"{names} are metrics of device {device} and need numbers"
    )
    return InvalidInput(summary, errors)


def _detail(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is float:
        return SEND_AS_READING  # a state report or gRPC state: numbers are state there
    return f"{NEEDS_A_NUMBER}, not {_described(value)}"


def _described(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {excerpt(value, _QUOTED_CHARS)!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"
