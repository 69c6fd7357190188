"""Every decoder applies the same rules: property tests against plain references.

JSON: the fast decoder of common bodies returns None or exactly what the
reference (the pydantic model and ``to_telemetry``) returns, and
``parse_telemetry_json`` refuses what the reference refuses, with the same
errors. gRPC: ``assemble``, with its whole-array shortcuts, agrees with a
reference written element by element from the rules. Across transports: the
same values sent as a JSON body and as a gRPC batch are accepted or refused
alike, in the same words, at the same places (each in its own form).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from telehub.domain.readings import Reading, StateUpdate, Telemetry, to_micros
from telehub.domain.rules import (
    BAD_DEVICE_ID,
    BAD_METRIC_NAME,
    NOT_FINITE,
    STATE_NOT_FINITE,
    TimeWindow,
    all_finite,
    all_finite_numbers,
    check_size,
    is_device_id,
    is_finite,
    is_metric_name,
    not_finite_at,
)
from telehub.domain.telemetry import (
    TelemetryBody,
    loc_to_pointer,
    parse_state_json,
    parse_telemetry_json,
    to_telemetry,
    validation_errors,
)
from telehub.domain.telemetry_fast_path import decode_simple_body
from telehub.domain.typed_batch import MAX_FIELD_ERRORS, Limits, SeriesColumns, assemble
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge

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


# --- JSON: the fast decoder, the reference and parse_telemetry_json ------------------

good_names = st.one_of(
    st.sampled_from(["t", "temperature", "a.b-c_1", "X" * 64]),
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
)
bad_names = st.sampled_from(["", "bad name", "x" * 65, "t\n", "é", "a/b", "~0"])
names = st.one_of(good_names, good_names, bad_names)

# Numbers as JSON text, including what orjson refuses and the model reads as inf or nan.
number_texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, "1e308"]),
)
json_leaves = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.integers(-10, 10), st.floats()
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
value_texts = st.one_of(number_texts, number_texts, json_values.map(json.dumps))
ts_texts = st.one_of(
    st.none(),  # absent
    st.just("null"),
    st.integers(NOW_MS - 10**11, NOW_MS + 10**6).map(str),
    st.sampled_from([NOW_MS + 300_000, NOW_MS + 300_001, 0, -1, 2**66, -(2**66)]).map(str),
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


# --- gRPC: assemble against the rules applied element by element ----------------------

floats = st.one_of(
    st.floats(),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan]),
)
stamps_us = st.one_of(
    st.integers(NOW_US - 10**9, NOW_US + 400_000_000),
    st.sampled_from([0, -1, NOW_US, NOW_US + 300_000_000, NOW_US + 300_000_001]),
    st.integers(-(2**62), 2**62),
)
metrics = st.one_of(good_names, good_names, bad_names)


@st.composite
def series_columns(draw: st.DrawFn) -> SeriesColumns:
    values = draw(st.lists(floats, max_size=5))
    shape = draw(st.sampled_from(["none", "same", "same", "other"]))
    if shape == "none":
        stamps: list[int] = []
    elif shape == "same":
        stamps = draw(st.lists(stamps_us, min_size=len(values), max_size=len(values)))
    else:
        stamps = draw(st.lists(stamps_us, min_size=1, max_size=6))
    return SeriesColumns(draw(metrics), values, stamps)


def readings_of(device_id: str) -> st.SearchStrategy[list[Reading]]:
    return st.lists(st.builds(Reading, st.just(device_id), metrics, stamps_us, floats), max_size=4)


def state_of(device_id: str) -> st.SearchStrategy[list[StateUpdate]]:
    update = st.builds(StateUpdate, st.just(device_id), metrics, stamps_us, json_values)
    return st.lists(update, max_size=3)


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[Reading], list[SeriesColumns], list[StateUpdate]]:
    device_id = draw(st.sampled_from([DEVICE, DEVICE, DEVICE, "Bad", ""]))
    readings = draw(readings_of(device_id))
    series = draw(st.lists(series_columns(), max_size=3))
    state = draw(state_of(device_id))
    return device_id, readings, series, state


def plain_assemble(
    device_id: str,
    readings: Sequence[Reading],
    series: Sequence[SeriesColumns],
    state: Sequence[StateUpdate],
    limits: Limits,
) -> Telemetry:
    """``assemble`` as the rules say it, one element at a time, no shortcut."""
    count = len(readings) + sum(len(s.values) for s in series) + len(state)
    check_size(count, limits.max_values, "#/readings")
    window = TimeWindow.after(limits.received_us, limits.max_future_skew)
    errors: list[FieldError] = []

    def refuse(pointer: str, detail: str | None) -> None:
        if detail is not None:
            errors.append(FieldError(detail=detail, pointer=pointer))

    if not is_device_id(device_id):
        refuse("#/device_id", BAD_DEVICE_ID)
    if not (readings or series or state):
        refuse("#/readings", "at least one reading or state value")
    for i, reading in enumerate(readings):
        refuse(
            f"#/readings/{i}/metric", None if is_metric_name(reading.metric) else BAD_METRIC_NAME
        )
        refuse(f"#/readings/{i}/value", None if is_finite(reading.value) else NOT_FINITE)
        refuse(f"#/readings/{i}/ts", window.problem(reading.ts_us))
    for i, columns in enumerate(series):
        refuse(f"#/series/{i}/metric", None if is_metric_name(columns.metric) else BAD_METRIC_NAME)
        if not columns.values:
            refuse(f"#/series/{i}/values", "at least one value")
        for j, value in enumerate(columns.values):
            refuse(f"#/series/{i}/values/{j}", None if is_finite(value) else NOT_FINITE)
        if columns.timestamps_us and len(columns.timestamps_us) != len(columns.values):
            refuse(f"#/series/{i}/timestamps_us", "one per value, or none")
        elif columns.timestamps_us:
            for j, ts_us in enumerate(columns.timestamps_us):
                refuse(f"#/series/{i}/timestamps_us/{j}", window.problem(ts_us))
    for i, update in enumerate(state):
        refuse(f"#/state/{i}/key", None if is_metric_name(update.key) else BAD_METRIC_NAME)
        refuse(f"#/state/{i}/value", None if all_finite(update.value) else STATE_NOT_FINITE)
        refuse(f"#/state/{i}/ts", window.problem(update.ts_us))
    if errors:
        raise InvalidInput("reading batch is invalid", errors[:MAX_FIELD_ERRORS])
    rows = list(readings)
    for columns in series:
        stamps = columns.timestamps_us or [limits.received_us] * len(columns.values)
        rows += [
            Reading(device_id, columns.metric, t, v)
            for t, v in zip(stamps, columns.values, strict=True)
        ]
    return Telemetry(device_id=device_id, readings=tuple(rows), state=tuple(state))


@QUICK
@given(batches(), st.sampled_from([0, 1, 6, 12, 40]), st.sampled_from([300.0, 0.0, 60.5]))
def test_assemble_agrees_with_the_rules_applied_one_by_one(
    batch: tuple[str, list[Reading], list[SeriesColumns], list[StateUpdate]],
    max_values: int,
    skew: float,
) -> None:
    device_id, readings, series, state = batch
    limits = Limits(received_us=NOW_US, max_future_skew=skew, max_values=max_values)
    got = outcome(
        lambda: assemble(device_id, readings=readings, series=series, state=state, limits=limits)
    )
    assert got == outcome(lambda: plain_assemble(device_id, readings, series, state, limits))
    if isinstance(got, Telemetry) and got.newest is not None:
        # ``newest`` may leave readings out, but never the newest of a metric.
        for metric in {r.metric for r in got.readings}:
            newest = max(r.ts_us for r in got.readings if r.metric == metric)
            assert newest in {r.ts_us for r in got.newest if r.metric == metric}


@QUICK
@given(st.lists(floats, max_size=12))
def test_the_sum_shortcut_finds_exactly_what_the_rule_refuses(values: list[float]) -> None:
    assert not_finite_at(values) == [i for i, v in enumerate(values) if not is_finite(v)]
    assert all_finite_numbers(values) == all(is_finite(v) for v in values)


@QUICK
@given(floats)
def test_the_finite_rule_is_math_isfinite(value: float) -> None:
    assert is_finite(value) == math.isfinite(value)


@QUICK
@given(st.lists(stamps_us, max_size=8), st.sampled_from([300.0, 0.0, 60.5]))
def test_the_min_max_shortcut_admits_exactly_what_the_window_admits(
    stamps: list[int], skew: float
) -> None:
    window = TimeWindow.after(NOW_US, skew)
    assert window.admits_all(stamps) == all(window.admits(t) for t in stamps)
    assert all(window.admits(t) == (window.problem(t) is None) for t in stamps)


def test_finite_numbers_whose_sum_overflows_are_accepted() -> None:
    # A sum of [1e308, 1e308] is inf: the shortcut must ask each number, not refuse.
    assert not_finite_at([1e308, 1e308]) == []
    series = [SeriesColumns("t", [1e308, 1e308], [])]
    telemetry = assemble(DEVICE, readings=[], series=series, state=[], limits=LIMITS)
    assert [r.value for r in telemetry.readings] == [1e308, 1e308]
    raw = '[{"values": {"a": 1e308}}, {"values": {"a": 1e308, "b": -1e308}}]'
    assert fast(raw) == reference(raw)
    assert fast(raw) is not None


def test_the_window_s_words() -> None:
    window = TimeWindow.after(NOW_US, SKEW)
    assert window.problem(NOW_US + 300_000_001) == "more than 300 s in the future"
    assert window.problem(-1) == "before 1970-01-01"
    assert window.problem(window.latest_us) is None
    assert window.problem(0) is None
    assert TimeWindow.after(NOW_US, 0.5).too_late == "more than 0.5 s in the future"


# --- across transports: one JSON body, one gRPC batch ---------------------------------

cross_values = st.one_of(
    st.integers(-(10**6), 10**6),
    floats,
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.lists(st.one_of(st.integers(-3, 3), floats), max_size=2),
)
cross_ts_ms = st.one_of(
    st.none(),
    st.integers(NOW_MS - 10**9, NOW_MS + 400_000),
    st.sampled_from([0, -1, NOW_MS + 300_000, NOW_MS + 300_001, 2**62, -(2**62)]),
)
cross_messages = st.lists(
    st.tuples(cross_ts_ms, st.dictionaries(metrics, cross_values, min_size=1, max_size=3)),
    min_size=1,
    max_size=3,
)

FINITE_DETAILS = {NOT_FINITE, STATE_NOT_FINITE}


def as_batch(
    messages: list[tuple[int | None, dict[str, Any]]],
) -> tuple[list[Reading], list[StateUpdate], dict[str, str]]:
    """The messages as gRPC rows and state, and where each gRPC pointer is in the JSON."""
    readings: list[Reading] = []
    state: list[StateUpdate] = []
    where: dict[str, str] = {}
    for i, (ts_ms, values) in enumerate(messages):
        ts_us = NOW_US if ts_ms is None else ts_ms * 1000
        ts_at = loc_to_pointer([i, "ts"])
        for key, value in values.items():
            value_at = loc_to_pointer([i, "values", key])
            if type(value) in (int, float):
                row = f"#/readings/{len(readings)}"
                readings.append(Reading(DEVICE, key, ts_us, float(value)))
                where |= {f"{row}/metric": value_at, f"{row}/value": value_at}
            else:
                row = f"#/state/{len(state)}"
                state.append(StateUpdate(DEVICE, key, ts_us, value))
                where |= {f"{row}/key": value_at, f"{row}/value": value_at}
            where[f"{row}/ts"] = ts_at
    return readings, state, where


def located(errors: list[FieldError], where: dict[str, str] | None = None) -> set[tuple[str, str]]:
    """Each error as (JSON pointer, detail): a set, as one JSON field may be many gRPC rows."""
    return {((where or {}).get(e.pointer or "", e.pointer or ""), e.detail) for e in errors}


@QUICK
@given(cross_messages)
def test_a_json_body_and_a_grpc_batch_of_the_same_values_agree(
    messages: list[tuple[int | None, dict[str, Any]]],
) -> None:
    body = [{"values": v} if ts is None else {"ts": ts, "values": v} for ts, v in messages]
    from_json = outcome(lambda: parse_json(json.dumps(body)))
    readings, state, where = as_batch(messages)
    from_grpc = outcome(
        lambda: assemble(DEVICE, readings=readings, series=[], state=state, limits=LIMITS)
    )
    if isinstance(from_json, Telemetry) or isinstance(from_grpc, Telemetry):
        assert from_json == from_grpc
        return
    json_kind, json_detail, json_errors = from_json
    grpc_kind, grpc_detail, grpc_errors = from_grpc
    if grpc_kind is PayloadTooLarge:
        # gRPC counts first; JSON judges the fields first, then counts.
        if json_kind is PayloadTooLarge:
            assert json_detail == grpc_detail
            assert [e.detail for e in json_errors] == [e.detail for e in grpc_errors]
        return
    assert json_kind is grpc_kind is InvalidInput
    grpc_located = located(grpc_errors, where)
    # JSON reports names and timestamps (the model's) before it looks at numbers.
    rule_errors = {e for e in grpc_located if e[1] not in FINITE_DETAILS}
    assert located(json_errors) == (rule_errors or grpc_located)


state_values = st.one_of(json_values, st.floats())


@QUICK
@given(st.dictionaries(metrics, state_values, min_size=1, max_size=8))
def test_a_json_state_report_and_grpc_state_agree(values: dict[str, Any]) -> None:
    from_json = outcome(
        lambda: parse_state_json(
            DEVICE, json.dumps(values), received_at=NOW, max_batch_readings=MAX
        )
    )
    state = [StateUpdate(DEVICE, k, NOW_US, v) for k, v in values.items()]
    from_grpc = outcome(
        lambda: assemble(DEVICE, readings=[], series=[], state=state, limits=LIMITS)
    )
    if isinstance(from_json, Telemetry) or isinstance(from_grpc, Telemetry):
        assert from_json == from_grpc
        return
    json_kind, json_detail, json_errors = from_json
    grpc_kind, grpc_detail, grpc_errors = from_grpc
    if grpc_kind is PayloadTooLarge:
        if json_kind is PayloadTooLarge:
            assert json_detail == grpc_detail
            assert [e.detail for e in json_errors] == [e.detail for e in grpc_errors]
        return
    where = {
        f"#/state/{i}/{field}": loc_to_pointer([key])
        for i, key in enumerate(values)
        for field in ("key", "value")
    }
    assert json_kind is grpc_kind is InvalidInput
    grpc_located = located(grpc_errors, where)
    names_only = {e for e in grpc_located if e[1] not in FINITE_DETAILS}
    assert located(json_errors) == (names_only or grpc_located)
