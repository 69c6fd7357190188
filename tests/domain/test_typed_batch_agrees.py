"""gRPC: ``assemble``, with its whole-array shortcuts, agrees with a reference written
element by element from the rules; so do the shortcuts themselves (the sum for
finiteness, the minimum and maximum for the time window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.domain.rules import (
    BAD_DEVICE_ID,
    BAD_METRIC_NAME,
    EARLIEST_US,
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
from telehub.domain.typed_batch import (
    MAX_FIELD_ERRORS,
    US_ADVICE,
    Limits,
    SeriesColumns,
    assemble,
)
from telehub.errors import FieldError, InvalidInput
from tests.domain.decoders_support import (
    DEVICE,
    LIMITS,
    NOW_US,
    QUICK,
    SKEW,
    fast,
    floats,
    json_values,
    metrics,
    outcome,
    reference,
)

stamps_us = st.one_of(
    st.integers(NOW_US - 10**9, NOW_US + 400_000_000),
    st.sampled_from([0, -1, NOW_US, NOW_US + 300_000_000, NOW_US + 300_000_001]),
    st.sampled_from([EARLIEST_US - 1, EARLIEST_US, NOW_US // 1000, NOW_US // 1_000_000]),
    # Epoch seconds and milliseconds sent as microseconds: told so.
    st.integers(NOW_US // 1_000_000 - 10**8, NOW_US // 1_000_000 + 10**3),
    st.integers(NOW_US // 1000 - 10**11, NOW_US // 1000 + 10**6),
    st.integers(-(2**62), 2**62),
)


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
    device_id = draw(st.sampled_from([DEVICE, DEVICE, DEVICE, "Greenhouse-2", "a/b", ""]))
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
                refuse(f"#/series/{i}/timestamps_us/{j}", series_ts_problem(window, ts_us))
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


def series_ts_problem(window: TimeWindow, ts_us: int) -> str | None:
    """A series timestamp is a bare integer of microseconds: one in seconds or
    milliseconds is told so, and to send microseconds."""
    problem = window.problem(ts_us)
    if problem is None or ts_us >= EARLIEST_US:
        return problem
    for unit, scale in (("seconds", 1_000_000), ("milliseconds", 1000)):
        if window.admits(ts_us * scale):
            return f"before 2000-01-01: looks like {unit}; {US_ADVICE}"
    return problem


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
    assert window.problem(-1) == "before 2000-01-01"
    assert window.problem(0) == "before 2000-01-01"
    assert window.problem(EARLIEST_US - 1) == "before 2000-01-01"
    assert window.problem(EARLIEST_US) is None
    assert window.problem(window.latest_us) is None
    assert TimeWindow.after(NOW_US, 0.5).too_late == "more than 0.5 s in the future"


def test_series_timestamps_in_seconds_or_milliseconds_are_told_so() -> None:
    seconds, millis = NOW_US // 1_000_000, NOW_US // 1000
    series = [SeriesColumns("t", [1.0, 2.0, 3.0], [seconds, millis, 5])]
    with pytest.raises(InvalidInput) as caught:
        assemble(DEVICE, readings=[], series=series, state=[], limits=LIMITS)
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [
        ("#/series/0/timestamps_us/0", "before 2000-01-01: looks like seconds; send microseconds"),
        (
            "#/series/0/timestamps_us/1",
            "before 2000-01-01: looks like milliseconds; send microseconds",
        ),
        ("#/series/0/timestamps_us/2", "before 2000-01-01"),
    ]


def test_a_row_timestamp_before_2000_is_refused() -> None:
    # A gRPC row's ts is a google.protobuf.Timestamp: its unit is never in doubt.
    readings = [Reading(DEVICE, "t", 1_700_000_000, 1.0)]
    with pytest.raises(InvalidInput) as caught:
        assemble(DEVICE, readings=readings, series=[], state=[], limits=LIMITS)
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [
        ("#/readings/0/ts", "before 2000-01-01")
    ]
