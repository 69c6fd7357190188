"""What the decoder agreement tests share: one clock, one device, the decoders' calls.

The property tests of tests/domain compare decoders that must agree: the JSON
fast path with the pydantic reference (test_json_decoders_agree.py), the typed
batch's whole-array shortcuts with the rules one by one
(test_typed_batch_agrees.py), and a JSON body with the same values as a gRPC
batch (test_transports_agree.py). They judge inputs at the same instant with
the same limits, draw names and values from the same strategies, and call the
JSON decoders the same way, so they are declared here once; what only one
module draws stays in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import settings
from hypothesis import strategies as st
from pydantic import ValidationError

from telehub.domain.readings import Telemetry, to_micros
from telehub.domain.telemetry import (
    TelemetryBody,
    parse_telemetry_json,
    to_telemetry,
    validation_errors,
)
from telehub.domain.telemetry_fast_path import decode_simple_body
from telehub.domain.typed_batch import Limits
from telehub.errors import FieldError, InvalidInput

DEVICE = "dev-1"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_US = to_micros(NOW)
NOW_MS = NOW_US // 1000
SKEW = 300.0
MAX = 6  # values per submission: the generated ones are around it
LIMITS = Limits(received_us=NOW_US, max_future_skew=SKEW, max_values=MAX)
QUICK = settings(max_examples=200, deadline=None, database=None)

Refusal = tuple[type[InvalidInput], str, list[FieldError]]
Outcome = Telemetry | Refusal


def outcome(decode: Callable[[], Telemetry]) -> Outcome:
    """What a decoder makes of its input: the telemetry, or how it refuses it."""
    try:
        return decode()
    except InvalidInput as exc:
        return (type(exc), exc.detail, exc.errors)


# --- strategies more than one comparison draws from ---------------------------------

good_names = st.one_of(
    st.sampled_from(["t", "temperature", "a.b-c_1", "X" * 64]),
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
)
bad_names = st.sampled_from(["", "bad name", "x" * 65, "t\n", "é", "a/b", "~0"])
metrics = st.one_of(good_names, good_names, bad_names)

json_leaves = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.integers(-10, 10), st.floats()
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)

floats = st.one_of(
    st.floats(),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan]),
)


# --- the JSON decoders, called as every test calls them ------------------------------


def reference(raw: str) -> Telemetry:
    """The pydantic model and to_telemetry: the decoder every other must agree with."""
    try:
        body = TelemetryBody.model_validate_json(raw, context={"now": NOW, "max_future_skew": SKEW})
    except ValidationError as exc:
        raise InvalidInput("telemetry body is invalid", validation_errors(exc)) from None
    return to_telemetry(DEVICE, body, received_at=NOW, max_batch_readings=MAX)


def fast(raw: str | bytes) -> Telemetry | None:
    return decode_simple_body(
        DEVICE, raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )


def parse_json(raw: str | bytes) -> Telemetry:
    return parse_telemetry_json(
        DEVICE, raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
