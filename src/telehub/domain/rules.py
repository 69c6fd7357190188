"""The rules of a valid reading, written once; every decoder calls them.

A JSON body (the pydantic model and its fast path), a state report and a gRPC
batch are different forms of the same thing, so they obey the same rules and
are refused in the same words: a device id and a metric name each match one
pattern, a value is a finite number, a timestamp lies between 2000-01-01 and a
little after the moment it was received, and a submission holds at most so
many values. Only the pointer differs, because it names the field in the
sender's own form (and the advice on a timestamp's unit, which is the form's).

A decoder may check a whole array at once first (a sum for finiteness, a min
and max for the time window), because one pass in C is what a hub can afford
per reading; what it falls back to element by element is the rule here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from telehub.errors import FieldError, PayloadTooLarge

METRIC_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# The identifiers devices really carry: a MAC address (aa:bb:cc:dd:ee:ff), a
# Zigbee IEEE address (0x00158d0001a2b3c4), a Tasmota topic (tasmota_1A2B3C), a
# name (Greenhouse-2). Case is kept and matters, as it does in MQTT topics and
# broker logins. Nothing an MQTT topic level forbids (+ # / and NUL), nothing a
# URL path must escape, nothing a dynamic-security role name cannot hold; the
# first character is a letter or digit, so no id is "." or "..", or a $-topic.
DEVICE_ID_MAX_CHARS = 128
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
DEVICE_ID_RULE = "1 to 128 letters, digits, '_', '.', ':' and '-', starting with a letter or digit"

# The detail of each refusal: one wording per rule, whichever decoder applies it.
BAD_METRIC_NAME = f"must match {METRIC_NAME_PATTERN}"
BAD_DEVICE_ID = f"must match {DEVICE_ID_PATTERN}"
NOT_FINITE = "must be a finite number"
STATE_NOT_FINITE = "numbers must be finite"
TOO_MANY_VALUES = "too many values"

# No reading is older than this: a number before it is a timestamp in the wrong
# unit (epoch seconds sent as milliseconds land in January 1970), or a clock
# that was never set (a device counting from 1970 since it booted).
EARLIEST = "2000-01-01"
EARLIEST_US = 946_684_800_000_000
TOO_EARLY = f"before {EARLIEST}"
# What a number before EARLIEST would be in a coarser unit, coarsest first.
_COARSER_UNITS = ((1_000_000, "seconds"), (1_000, "milliseconds"))

_METRIC_RE = re.compile(METRIC_NAME_PATTERN)
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_new_tuple = tuple.__new__

# Metric names already matched: devices send the same few, and a set lookup is
# far cheaper than the pattern. Cleared when full, so it stays bounded. A hot
# loop may test membership itself before calling is_metric_name (a name in it
# has matched); only is_metric_name adds to it.
KNOWN_METRIC_NAMES: set[str] = set()
KNOWN_METRIC_NAMES_MAX = 10_000


def is_metric_name(name: str) -> bool:
    """The rule for a metric name and a state key alike."""
    known = KNOWN_METRIC_NAMES
    if name in known:
        return True
    if _METRIC_RE.fullmatch(name) is None:
        return False
    if len(known) >= KNOWN_METRIC_NAMES_MAX:
        known.clear()
    known.add(name)
    return True


def is_device_id(device_id: str) -> bool:
    """The rule for a device id, on every transport: HTTP paths, MQTT topics, gRPC."""
    return _DEVICE_RE.fullmatch(device_id) is not None


def is_finite(number: float) -> bool:
    """False for infinity and NaN: a subtraction is the cheapest test Python has."""
    return number - number == 0.0


def all_finite_numbers(numbers: Collection[float]) -> bool:
    """Whether every number is finite, by one sum first.

    A sum holding an infinity or a NaN is never finite, but a sum of large
    finite numbers can overflow (``[1e308, 1e308]``): then each is asked.
    """
    total = sum(numbers)
    return is_finite(total) or all(map(is_finite, numbers))


def not_finite_at(numbers: Sequence[float]) -> list[int]:
    """The positions of the numbers that are not finite (one sum first, as above)."""
    total = sum(numbers)
    if is_finite(total):
        return []
    return [i for i, number in enumerate(numbers) if not is_finite(number)]


def all_finite(value: Any) -> bool:
    """The rule for a state value: any JSON value, every number in it finite."""
    if isinstance(value, float):
        return is_finite(value)
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    return True


def _seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class TimeWindow(NamedTuple):
    """The timestamps a submission may carry: from :data:`EARLIEST` to
    ``max_future_skew`` seconds after it was received (a device clock may run a
    little fast).

    Judged against the time received, not the clock, so replayed input is
    judged as it was when it arrived. Built once per submission, by
    :meth:`after`; a tuple because the fast decoders build one per body.
    """

    received_us: int
    latest_us: int
    max_future_skew: float

    @classmethod
    def after(cls, received_us: int, max_future_skew: float) -> TimeWindow:
        latest_us = received_us + int(max_future_skew * 1_000_000)
        return _new_tuple(cls, (received_us, latest_us, max_future_skew))

    @property
    def too_late(self) -> str:
        """The detail of a timestamp after ``latest_us``."""
        return f"more than {_seconds(self.max_future_skew)} s in the future"

    def admits(self, ts_us: int) -> bool:
        return EARLIEST_US <= ts_us <= self.latest_us

    def admits_all(self, stamps: Collection[int]) -> bool:
        """Whether every timestamp is admitted, by min and max (exact for integers)."""
        return not stamps or (min(stamps) >= EARLIEST_US and max(stamps) <= self.latest_us)

    def problem(self, ts_us: int) -> str | None:
        """What is wrong with ``ts_us``, or None."""
        if ts_us > self.latest_us:
            return self.too_late
        if ts_us < EARLIEST_US:
            return TOO_EARLY
        return None

    def problem_of_number(self, number: float, *, unit_us: int, advice: str) -> str | None:
        """What is wrong with a timestamp sent as a number of units of ``unit_us``
        microseconds since the epoch, or None.

        Before :data:`EARLIEST`, it says which coarser unit the number would be
        admitted in ("looks like seconds") and gives the sender's ``advice``:
        epoch seconds in a milliseconds field is the usual mistake, and it must
        not be stored as January 1970.
        """
        ts_us = number * unit_us
        if ts_us > self.latest_us:
            return self.too_late
        if ts_us >= EARLIEST_US:
            return None
        for scale, unit in _COARSER_UNITS:
            if scale > unit_us and EARLIEST_US <= number * scale <= self.latest_us:
                return f"{TOO_EARLY}: looks like {unit}; {advice}"
        return TOO_EARLY


def check_size(count: int, limit: int, pointer: str = "#") -> None:
    """PayloadTooLarge if a submission holds more values (readings and state) than ``limit``.

    State counts too: it takes queue space like readings do.
    """
    if count > limit:
        raise PayloadTooLarge(
            f"batch holds {count} values; the limit is {limit}",
            [FieldError(detail=TOO_MANY_VALUES, pointer=pointer)],
        )
