"""Telemetry from typed fields (gRPC) instead of parsed JSON: the same rules, checked here.

A typed message cannot carry a string where a number goes, but it can still
carry NaN, a bad metric name or a timestamp from the future: the same limits
as a JSON body, reported with a pointer to each offending field
(``#/readings/3/value``, ``#/series/0/values/17``) so every transport names
the same place.

Readings come as rows (one message each) or as series (a metric with parallel
arrays of values and timestamps). A series is checked by whole arrays — a
sum for finiteness, min and max for the time range — and only searched
element by element when that finds something wrong: it is the form for rates
where a Python step per reading is what a hub can afford least.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

from telehub.domain.readings import (
    DEVICE_ID_PATTERN,
    METRIC_NAME_PATTERN,
    Reading,
    StateUpdate,
    Telemetry,
)
from telehub.domain.telemetry import all_finite
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge

_METRIC_RE = re.compile(METRIC_NAME_PATTERN)
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
MAX_FIELD_ERRORS = 100


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
    def latest_us(self) -> int:
        return self.received_us + int(self.max_future_skew * 1_000_000)


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
    if count > limits.max_values:
        raise PayloadTooLarge(
            f"batch holds {count} values; the limit is {limits.max_values}",
            [FieldError(detail="too many values", pointer="#/readings")],
        )
    errors: list[FieldError] = []
    if not _DEVICE_RE.fullmatch(device_id):
        errors.append(FieldError(detail=f"must match {DEVICE_ID_PATTERN}", pointer="#/device_id"))
    if not (readings or series or state):
        errors.append(
            FieldError(detail="at least one reading or state value", pointer="#/readings")
        )
    _check_rows(readings, limits, errors)
    for index, columns in enumerate(series):
        _check_series(index, columns, limits, errors)
    _check_state(state, limits, errors)
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


def _check_rows(readings: Sequence[Reading], limits: Limits, errors: list[FieldError]) -> None:
    latest_us = limits.latest_us
    for index, reading in enumerate(readings):
        if not _METRIC_RE.fullmatch(reading.metric):
            errors.append(_at(f"readings/{index}/metric", f"must match {METRIC_NAME_PATTERN}"))
        value = reading.value
        if value - value != 0.0:  # inf or nan: the cheapest test
            errors.append(_at(f"readings/{index}/value", "must be a finite number"))
        _check_ts(f"readings/{index}/ts", reading.ts_us, latest_us, limits, errors)


def _check_series(
    index: int, columns: SeriesColumns, limits: Limits, errors: list[FieldError]
) -> None:
    where = f"series/{index}"
    if not _METRIC_RE.fullmatch(columns.metric):
        errors.append(_at(f"{where}/metric", f"must match {METRIC_NAME_PATTERN}"))
    values, stamps = columns.values, columns.timestamps_us
    if not values:
        errors.append(_at(f"{where}/values", "at least one value"))
    total = sum(values)
    if total - total != 0.0:  # a NaN or infinity somewhere (or a sum too large): look
        errors.extend(
            _at(f"{where}/values/{i}", "must be a finite number")
            for i, v in enumerate(values)
            if v - v != 0.0
        )
    if not stamps:
        return
    if len(stamps) != len(values):
        errors.append(_at(f"{where}/timestamps_us", "one per value, or none"))
    elif max(stamps) > limits.latest_us or min(stamps) < 0:
        for i, ts_us in enumerate(stamps):
            _check_ts(f"{where}/timestamps_us/{i}", ts_us, limits.latest_us, limits, errors)


def _check_state(state: Sequence[StateUpdate], limits: Limits, errors: list[FieldError]) -> None:
    for index, update in enumerate(state):
        if not _METRIC_RE.fullmatch(update.key):
            errors.append(_at(f"state/{index}/key", f"must match {METRIC_NAME_PATTERN}"))
        if not all_finite(update.value):
            errors.append(_at(f"state/{index}/value", "numbers must be finite"))
        _check_ts(f"state/{index}/ts", update.ts_us, limits.latest_us, limits, errors)


def _check_ts(
    where: str, ts_us: int, latest_us: int, limits: Limits, errors: list[FieldError]
) -> None:
    if ts_us > latest_us:
        errors.append(_at(where, f"more than {int(limits.max_future_skew)} s in the future"))
    elif ts_us < 0:
        errors.append(_at(where, "before 1970-01-01"))


def _at(path: str, detail: str) -> FieldError:
    return FieldError(detail=detail, pointer=f"#/{path}")
