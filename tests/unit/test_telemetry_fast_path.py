"""The fast decoder of simple telemetry bodies agrees with the validator, always.

Whatever the fast path accepts, the full validator accepts and decodes to the
same readings; whatever it declines, the validator decides. Hypothesis throws
well-formed, malformed and borderline bodies (NaN, huge or future timestamps,
bools, bad names, duplicate keys, extra fields) at both.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from telehub.domain.telemetry import (
    TelemetryBody,
    _simple_message,
    parse_telemetry_json,
    to_telemetry,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SKEW = 300.0
MAX = 5

names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    st.sampled_from(["", "bad name", "a" * 65, "t\n", "é", "x/y"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
field_values = st.one_of(numbers, st.booleans(), st.text(max_size=5), st.none())
timestamps = st.one_of(
    st.none(),
    st.integers(min_value=NOW_MS - 10**12, max_value=NOW_MS + 10**9),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.just("2026-11-25T11:00:00Z"),
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    values = draw(st.dictionaries(names, field_values, max_size=MAX + 2))
    body: dict[str, object] = {"values": values}
    if draw(st.booleans()):
        body["ts"] = draw(timestamps)
    if draw(st.integers(0, 9)) == 0:
        body["extra"] = 1
    text = json.dumps(body, allow_nan=True)
    if values and draw(st.integers(0, 9)) == 0:  # a duplicate key, as raw JSON allows
        first = next(iter(values))
        text = text.replace('"values": {', f'"values": {{{json.dumps(first)}: 0, ', 1)
    return text.encode()


@st.composite
def simple_bodies(draw: st.DrawFn) -> bytes:
    """Bodies of the common shape, mostly valid: the fast path's own ground."""
    good_names = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
    good_numbers = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    values = draw(st.dictionaries(good_names, good_numbers, min_size=1, max_size=MAX))
    body: dict[str, object] = {"values": values}
    if draw(st.booleans()):
        body["ts"] = draw(
            st.one_of(
                st.none(),
                st.integers(min_value=-1000, max_value=NOW_MS + 400_000),
                st.integers(min_value=NOW_MS - 10**11, max_value=NOW_MS + 10**6),
            )
        )
    return json.dumps(body).encode()


def validator(raw: bytes) -> object:
    body = TelemetryBody.model_validate_json(raw, context={"now": NOW, "max_future_skew": SKEW})
    return to_telemetry("dev", body, received_at=NOW, max_batch_readings=MAX)


@settings(max_examples=600, deadline=None)
@given(st.one_of(simple_bodies(), raw_bodies()))
def test_whatever_the_fast_path_accepts_the_validator_decodes_the_same(raw: bytes) -> None:
    fast = _simple_message(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    if fast is not None:
        assert validator(raw) == fast


def test_the_common_body_takes_the_fast_path() -> None:
    raw = json.dumps({"ts": NOW_MS - 1000, "values": {"temperature": 21.5, "n": 3}}).encode()
    fast = _simple_message(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    assert fast is not None
    assert [(r.metric, r.value) for r in fast.readings] == [("temperature", 21.5), ("n", 3.0)]
    assert fast == parse_telemetry_json(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    assert math.isclose(fast.readings[0].ts_us, (NOW_MS - 1000) * 1000)
