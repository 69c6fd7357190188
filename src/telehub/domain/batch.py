"""The telemetry rules for batches built from typed fields (gRPC) instead of parsed JSON.

A typed message cannot carry a string where a number goes, but it can still
carry NaN, a bad metric name or a timestamp from the future: the same limits
as a JSON body, reported with a pointer to each offending field
(``#/readings/3/value``) so every transport names the same place.
"""

from __future__ import annotations

import re

from telehub.domain.readings import DEVICE_ID_PATTERN, METRIC_NAME_PATTERN, Telemetry
from telehub.domain.telemetry import all_finite
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge

_METRIC_RE = re.compile(METRIC_NAME_PATTERN)
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
MAX_FIELD_ERRORS = 100


def check_telemetry(
    telemetry: Telemetry, *, received_us: int, max_future_skew: float, max_values: int
) -> None:
    """Raise InvalidInput (with every offending field, up to 100) unless ``telemetry`` is valid.

    Timestamps already hold the receive time where the sender gave none.
    """
    count = len(telemetry.readings) + len(telemetry.state)
    if count > max_values:
        raise PayloadTooLarge(
            f"batch holds {count} values; the limit is {max_values}",
            [FieldError(detail="too many values", pointer="#/readings")],
        )
    errors: list[FieldError] = []
    if not _DEVICE_RE.fullmatch(telemetry.device_id):
        errors.append(FieldError(detail=f"must match {DEVICE_ID_PATTERN}", pointer="#/device_id"))
    if count == 0:
        errors.append(
            FieldError(detail="at least one reading or state value", pointer="#/readings")
        )
    latest_us = received_us + int(max_future_skew * 1_000_000)
    skew = f"more than {int(max_future_skew)} s in the future"
    for index, reading in enumerate(telemetry.readings):
        if not _METRIC_RE.fullmatch(reading.metric):
            errors.append(_at("readings", index, "metric", f"must match {METRIC_NAME_PATTERN}"))
        value = reading.value
        if value - value != 0.0:  # inf or nan: the cheapest test
            errors.append(_at("readings", index, "value", "must be a finite number"))
        if reading.ts_us > latest_us:
            errors.append(_at("readings", index, "ts", skew))
        elif reading.ts_us < 0:
            errors.append(_at("readings", index, "ts", "before 1970-01-01"))
    for index, update in enumerate(telemetry.state):
        if not _METRIC_RE.fullmatch(update.key):
            errors.append(_at("state", index, "key", f"must match {METRIC_NAME_PATTERN}"))
        if not all_finite(update.value):
            errors.append(_at("state", index, "value", "numbers must be finite"))
        if update.ts_us > latest_us:
            errors.append(_at("state", index, "ts", skew))
        elif update.ts_us < 0:
            errors.append(_at("state", index, "ts", "before 1970-01-01"))
    if errors:
        raise InvalidInput("reading batch is invalid", errors[:MAX_FIELD_ERRORS])


def _at(kind: str, index: int, field: str, detail: str) -> FieldError:
    return FieldError(detail=detail, pointer=f"#/{kind}/{index}/{field}")
