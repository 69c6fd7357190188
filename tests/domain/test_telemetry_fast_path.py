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

from telehub.domain.telemetry import TelemetryBody, parse_telemetry_json, to_telemetry
from telehub.domain.telemetry_fast_path import decode_simple_body

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
def raw_messages(draw: st.DrawFn) -> bytes:
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
def simple_messages(draw: st.DrawFn) -> bytes:
    """Messages of the common shape, mostly valid: the fast path's own ground."""
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


def lists_of(messages: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Batches: a JSON list of such messages (empty and over the size limit included)."""
    return st.lists(messages, max_size=4).map(lambda ms: b"[" + b",".join(ms) + b"]")


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        simple_messages(),
        raw_messages(),
        lists_of(simple_messages()),
        lists_of(st.one_of(simple_messages(), raw_messages())),
        st.sampled_from([b"[]", b"[1]", b"[[]]", b'[{"values": {"a": 1}}, null]', b"{}"]),
    )


def validator(raw: bytes) -> object:
    body = TelemetryBody.model_validate_json(raw, context={"now": NOW, "max_future_skew": SKEW})
    return to_telemetry("dev", body, received_at=NOW, max_batch_readings=MAX)


@settings(max_examples=1000, deadline=None)
@given(bodies())
def test_whatever_the_fast_path_accepts_the_validator_decodes_the_same(raw: bytes) -> None:
    fast = decode_simple_body(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    if fast is not None:
        assert validator(raw) == fast


def test_the_common_body_takes_the_fast_path() -> None:
    raw = json.dumps({"ts": NOW_MS - 1000, "values": {"temperature": 21.5, "n": 3}}).encode()
    fast = decode_simple_body(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    assert fast is not None
    assert [(r.metric, r.value) for r in fast.readings] == [("temperature", 21.5), ("n", 3.0)]
    assert fast == parse_telemetry_json(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    assert math.isclose(fast.readings[0].ts_us, (NOW_MS - 1000) * 1000)


def test_a_gateway_batch_takes_the_fast_path() -> None:
    raw = json.dumps(
        [{"ts": NOW_MS - 2000 + i, "values": {"t": i, "h": 0.5}} for i in range(2)]
    ).encode()
    fast = decode_simple_body(
        "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
    )
    assert fast is not None
    assert [(r.metric, r.ts_us, r.value) for r in fast.readings] == [
        ("t", (NOW_MS - 2000) * 1000, 0.0),
        ("h", (NOW_MS - 2000) * 1000, 0.5),
        ("t", (NOW_MS - 1999) * 1000, 1.0),
        ("h", (NOW_MS - 1999) * 1000, 0.5),
    ]
    assert fast == validator(raw)


def test_a_batch_over_the_limit_is_left_to_the_validator_s_error() -> None:
    raw = json.dumps([{"values": {"a": 1, "b": 2}}] * 3).encode()  # 6 readings > MAX
    assert (
        decode_simple_body(
            "dev", raw, received_at=NOW, max_batch_readings=MAX, max_future_skew=SKEW
        )
        is None
    )
