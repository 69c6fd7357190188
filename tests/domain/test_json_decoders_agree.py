"""JSON: the fast decoder of common bodies returns None or exactly what the reference
(the pydantic model and ``to_telemetry``) returns, and ``parse_telemetry_json``
refuses what the reference refuses, with the same errors.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.domain.decoders_support import (
    NOW_MS,
    QUICK,
    bad_names,
    fast,
    good_names,
    json_values,
    outcome,
    parse_json,
    reference,
)

names = st.one_of(good_names, good_names, bad_names)

# Numbers as JSON text, including what orjson refuses and the model reads as inf or nan.
number_texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, "1e308"]),
)
value_texts = st.one_of(number_texts, number_texts, json_values.map(json.dumps))
ts_texts = st.one_of(
    st.none(),  # absent
    st.just("null"),
    st.integers(NOW_MS - 10**11, NOW_MS + 10**6).map(str),
    st.sampled_from([NOW_MS + 300_000, NOW_MS + 300_001, 0, -1, 2**66, -(2**66)]).map(str),
    # Around 2000-01-01, and epoch seconds where milliseconds go.
    st.sampled_from([946_684_799_999, 946_684_800_000, NOW_MS // 1000]).map(str),
    st.integers(NOW_MS // 1000 - 10**8, NOW_MS // 1000 + 10**3).map(str),
    st.floats(NOW_MS / 1000 - 1e6, NOW_MS / 1000 + 1e3).map(repr),
    st.integers(-(2**66), 2**66).map(str),
    st.floats(NOW_MS - 1e6, NOW_MS + 1e6).map(repr),
    st.sampled_from(["1e300", "-1e300", "NaN", "Infinity", "true", "false", '"yesterday"']),
    st.sampled_from(
        [
            '"2026-11-25T11:00:00Z"',
            '"2026-11-25T12:05:00Z"',  # the last moment admitted
            '"2026-11-25T12:05:00.000001Z"',
            '"2026-11-25T12:04:59"',  # naive: UTC
            '"2026-11-25T13:04:00+01:00"',
            '"1969-12-31T23:59:59Z"',
        ]
    ),
)


@st.composite
def message_texts(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.tuples(names, value_texts), max_size=4, unique_by=lambda kv: kv[0]))
    fields = ['"values": {' + ", ".join(f"{json.dumps(k)}: {v}" for k, v in items) + "}"]
    ts = draw(ts_texts)
    if ts is not None:
        fields.insert(draw(st.integers(0, 1)), f'"ts": {ts}')
    if draw(st.integers(0, 19)) == 0:
        fields.append('"extra": 1')
    if draw(st.integers(0, 29)) == 0:
        fields = fields[-1:]  # values missing, or only the ts
    return "{" + ", ".join(fields) + "}"


@st.composite
def simple_message_texts(draw: st.DrawFn) -> str:
    """The common body, mostly valid: the fast decoder's own ground."""
    values = draw(
        st.dictionaries(
            good_names,
            st.one_of(st.integers(-(2**63), 2**64 - 1), st.floats(-1e300, 1e300)),
            min_size=1,
            max_size=4,
        )
    )
    body: dict[str, Any] = {"values": values}
    if draw(st.booleans()):
        body["ts"] = draw(st.one_of(st.none(), st.integers(-1000, NOW_MS + 301_000)))
    return json.dumps(body)


def lists_of(messages: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(messages, max_size=4).map(lambda ms: "[" + ", ".join(ms) + "]")


json_bodies = st.one_of(
    message_texts(),
    simple_message_texts(),
    lists_of(message_texts()),
    lists_of(simple_message_texts()),
    lists_of(st.one_of(message_texts(), simple_message_texts())),
    st.sampled_from(["", "{", "[]", "[1]", "[[]]", "null", "42", '"x"', "{}"]),
)


@QUICK
@given(json_bodies)
def test_the_fast_decoder_returns_none_or_what_the_reference_returns(raw: str) -> None:
    expected = outcome(lambda: reference(raw))
    decoded = fast(raw)
    if decoded is not None:
        assert decoded == expected
        assert all(type(r.value) is float for r in decoded.readings)
    assert outcome(lambda: parse_json(raw)) == expected
    assert outcome(lambda: parse_json(raw.encode())) == expected


def test_the_fast_decoder_takes_the_common_body() -> None:
    raw = json.dumps([{"ts": NOW_MS - 1000, "values": {"t": 1, "h": 0.5}}, {"values": {"t": 2}}])
    decoded = fast(raw)
    assert decoded is not None
    assert decoded == reference(raw)
