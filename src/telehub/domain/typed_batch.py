"""Telemetry from typed fields (gRPC) instead of parsed JSON, checked by the same rules.

A typed message cannot carry a string where a number goes, but it can still
carry NaN, a bad metric name or a timestamp from the future. The rules are
those of :mod:`telehub.domain.rules`, as for a JSON body, and each refusal
points at the offending field (``#/readings/3/value``,
``#/series/0/values/17``) so every transport names the same place.

Readings come as rows (one message each) or as series (a metric with parallel
arrays of values and timestamps). A series is checked by whole arrays — a
sum for finiteness, min and max for the time window — and only searched
element by element, by the rule, when that finds something wrong (or the sum
overflowed): it is the form for rates where a Python step per reading is what
a hub can afford least.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.domain.rules import (
    BAD_DEVICE_ID,
    BAD_METRIC_NAME,
    NOT_FINITE,
    STATE_NOT_FINITE,
    TimeWindow,
    all_finite,
    check_size,
    is_device_id,
    is_finite,
    is_metric_name,
    not_finite_at,
)
from telehub.errors import FieldError, InvalidInput

MAX_FIELD_ERRORS = 100
# What a sender of series timestamps before 2000 is told to do instead.
US_ADVICE = "send microseconds"


@dataclass(frozen=True, slots=True)
class SeriesColumns:
    """One metric's readings as parallel arrays; no timestamps means "when received"."""

    metric: str
    values: list[float]
    timestamps_us: list[int]


@dataclass(frozen=True, slots=True)
class Limits:
    received_us: int
    max_future_skew: float
    max_values: int

    @property
    def window(self) -> TimeWindow:
        return TimeWindow.after(self.received_us, self.max_future_skew)

    @property
    def latest_us(self) -> int:
        return self.window.latest_us


def assemble(
    device_id: str,
    *,
    readings: Sequence[Reading],
    series: Sequence[SeriesColumns],
    state: Sequence[StateUpdate],
    limits: Limits,
) -> Telemetry:
    """The batch as one Telemetry, or InvalidInput naming every offending field (up to 100).

    Row readings and state already carry the receive time where the sender gave none.
    """
    count = len(readings) + sum(len(s.values) for s in series) + len(state)
    check_size(count, limits.max_values, "#/readings")
    errors: list[FieldError] = []
    if not is_device_id(device_id):
        errors.append(FieldError(detail=BAD_DEVICE_ID, pointer="#/device_id"))
    if not (readings or series or state):
        errors.append(
            FieldError(detail="at least one reading or state value", pointer="#/readings")
        )
    window = limits.window
    _check_rows(readings, window, errors)
    for index, columns in enumerate(series):
        _check_series(index, columns, window, errors)
    _check_state(state, window, errors)
    if errors:
        raise InvalidInput("reading batch is invalid", errors[:MAX_FIELD_ERRORS])
    rows = list(readings)
    newest = list(readings)  # rows may be in any order: each is a candidate
    new = tuple.__new__
    for columns in series:
        stamps = columns.timestamps_us or [limits.received_us] * len(columns.values)
        # tuple.__new__ builds each Reading in C: this is the per-reading cost of a series.
        rows.extend(
            map(
                new,
                repeat(Reading),
                zip(repeat(device_id), repeat(columns.metric), stamps, columns.values),
            )
        )
        last = stamps.index(max(stamps))
        newest.append(Reading(device_id, columns.metric, stamps[last], columns.values[last]))
    return Telemetry(
        device_id=device_id,
        readings=tuple(rows),
        state=tuple(state),
        newest=tuple(newest) if series else None,
    )


def _check_rows(readings: Sequence[Reading], window: TimeWindow, errors: list[FieldError]) -> None:
    for index, reading in enumerate(readings):
        if not is_metric_name(reading.metric):
            errors.append(_at(f"readings/{index}/metric", BAD_METRIC_NAME))
        if not is_finite(reading.value):
            errors.append(_at(f"readings/{index}/value", NOT_FINITE))
        _check_ts(f"readings/{index}/ts", reading.ts_us, window, errors)


def _check_series(
    index: int, columns: SeriesColumns, window: TimeWindow, errors: list[FieldError]
) -> None:
    where = f"series/{index}"
    if not is_metric_name(columns.metric):
        errors.append(_at(f"{where}/metric", BAD_METRIC_NAME))
    values, stamps = columns.values, columns.timestamps_us
    if not values:
        errors.append(_at(f"{where}/values", "at least one value"))
    errors.extend(_at(f"{where}/values/{i}", NOT_FINITE) for i in not_finite_at(values))
    if not stamps:
        return
    if len(stamps) != len(values):
        errors.append(_at(f"{where}/timestamps_us", "one per value, or none"))
    elif not window.admits_all(stamps):
        for i, ts_us in enumerate(stamps):
            # Bare integers: one in seconds or milliseconds is told so.
            problem = window.problem_of_number(ts_us, unit_us=1, advice=US_ADVICE)
            if problem is not None:
                errors.append(_at(f"{where}/timestamps_us/{i}", problem))


def _check_state(
    state: Sequence[StateUpdate], window: TimeWindow, errors: list[FieldError]
) -> None:
    for index, update in enumerate(state):
        if not is_metric_name(update.key):
            errors.append(_at(f"state/{index}/key", BAD_METRIC_NAME))
        if not all_finite(update.value):
            errors.append(_at(f"state/{index}/value", STATE_NOT_FINITE))
        _check_ts(f"state/{index}/ts", update.ts_us, window, errors)


def _check_ts(where: str, ts_us: int, window: TimeWindow, errors: list[FieldError]) -> None:
    problem = window.problem(ts_us)
    if problem is not None:
        errors.append(_at(where, problem))


def _at(path: str, detail: str) -> FieldError:
    return FieldError(detail=detail, pointer=f"#/{path}")
