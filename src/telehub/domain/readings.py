"""Readings: what every transport's input becomes once it is valid.

The rules they obey are in :mod:`telehub.domain.rules`; the patterns and name
checks are importable from here too, where they were first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from telehub.domain.rules import (
    DEVICE_ID_PATTERN,
    METRIC_NAME_PATTERN,
    is_device_id,
    is_metric_name,
)

__all__ = [
    "DEVICE_ID_PATTERN",
    "METRIC_NAME_PATTERN",
    "Reading",
    "StateUpdate",
    "Telemetry",
    "from_micros",
    "is_device_id",
    "is_metric_name",
    "now_us",
    "to_iso",
    "to_micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(ts: datetime) -> int:
    """Timestamps are stored as integer microseconds since the epoch, UTC.

    Integers make server-side bucketing a plain integer division on both
    SQLite and PostgreSQL, and keep the primary key compact.
    """
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_us() -> int:
    return time.time_ns() // 1_000  # the same as to_micros(datetime.now(UTC)), ten times cheaper


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def to_iso(us: int) -> str:
    """RFC 3339 in UTC with a ``Z``, the form every telehub API writes timestamps in."""
    return from_micros(us).isoformat().replace("+00:00", "Z")


class Reading(NamedTuple):
    """One numeric sample: the unit the store keys on ``(device_id, metric, ts)``.

    A tuple, because the write path hands millions of them to the driver as rows.
    """

    device_id: str
    metric: str
    ts_us: int
    value: float


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A non-numeric field of a device (firmware version, door open, mode): latest wins.

    ``at`` is where the value was in the sender's form (``("values", "door")``,
    ``(2, "values", "door")``, ``("state", 0, "value")``), so that a check made
    after decoding (is the key a metric of the device?) can point at it.
    """

    device_id: str
    key: str
    ts_us: int
    value: Any
    at: tuple[int | str, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Everything one submission carries for one device, already validated."""

    device_id: str
    readings: tuple[Reading, ...]
    state: tuple[StateUpdate, ...]
    # Some of ``readings`` that include the newest of every metric, when a sender's
    # form made that cheap to know (a series: its max timestamp); None means all of
    # them. The latest-value table needs only these.
    newest: tuple[Reading, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def last_ts_us(self) -> int | None:
        stamps = [r.ts_us for r in self.readings] + [s.ts_us for s in self.state]
        return max(stamps) if stamps else None
