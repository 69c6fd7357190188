"""The telemetry wire body: what every transport accepts, and how it points at bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from telehub.domain.readings import Reading, StateUpdate, Telemetry, to_micros
from telehub.domain.telemetry import parse_telemetry_json
from telehub.errors import InvalidInput, PayloadTooLarge

RECEIVED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RECEIVED_US = to_micros(RECEIVED)
HOUR_AGO_MS = RECEIVED_US // 1000 - 3_600_000


def parse(
    body: Any,
    *,
    received_at: datetime = RECEIVED,
    max_batch_readings: int = 1000,
    max_future_skew: float = 300.0,
) -> Telemetry:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return parse_telemetry_json(
        "dev-1",
        raw,
        received_at=received_at,
        max_batch_readings=max_batch_readings,
        max_future_skew=max_future_skew,
    )


def pointers(body: Any, **kwargs: Any) -> list[str | None]:
    """The JSON pointers of every error the body is refused with."""
    with pytest.raises(InvalidInput) as caught:
        parse(body, **kwargs)
    assert caught.value.errors, "a refusal must say which field is wrong"
    return [e.pointer for e in caught.value.errors]


# --- shape ---------------------------------------------------------------------------


def test_single_object_gives_one_message() -> None:
    telemetry = parse({"ts": "2026-01-01T11:00:00Z", "values": {"temp": 21.5}})
    assert telemetry == Telemetry(
        device_id="dev-1",
        readings=(Reading("dev-1", "temp", to_micros(RECEIVED - timedelta(hours=1)), 21.5),),
        state=(),
    )


def test_list_gives_every_message_in_order() -> None:
    telemetry = parse(
        [
            {"ts": "2026-01-01T11:00:00Z", "values": {"temp": 1}},
            {"ts": "2026-01-01T11:01:00Z", "values": {"temp": 2}},
        ]
    )
    base = to_micros(RECEIVED - timedelta(hours=1))
    assert [(r.ts_us, r.value) for r in telemetry.readings] == [
        (base, 1.0),
        (base + 60_000_000, 2.0),
    ]


# --- timestamps --------------------------------------------------------------------


def test_iso_ts_with_z_is_utc() -> None:
    telemetry = parse({"ts": "2025-06-01T08:30:00.250Z", "values": {"x": 1}})
    assert telemetry.readings[0].ts_us == to_micros(
        datetime(2025, 6, 1, 8, 30, 0, 250_000, tzinfo=UTC)
    )


def test_naive_iso_ts_is_treated_as_utc() -> None:
    naive = parse({"ts": "2025-06-01T08:30:00", "values": {"x": 1}})
    explicit = parse({"ts": "2025-06-01T08:30:00Z", "values": {"x": 1}})
    assert naive.readings[0].ts_us == explicit.readings[0].ts_us


def test_iso_ts_with_offset_is_converted_to_utc() -> None:
    telemetry = parse({"ts": "2025-06-01T10:30:00+02:00", "values": {"x": 1}})
    assert telemetry.readings[0].ts_us == to_micros(datetime(2025, 6, 1, 8, 30, tzinfo=UTC))


def test_integer_ts_is_epoch_milliseconds() -> None:
    telemetry = parse({"ts": 1_700_000_000_123, "values": {"x": 1}})
    assert telemetry.readings[0].ts_us == 1_700_000_000_123_000


SECONDS_HINT = "before 2000-01-01: looks like seconds; send milliseconds, or an ISO 8601 string"


@pytest.mark.parametrize("ts", [1_700_000_000, 1_767_268_800, 1_767_268_800.5])
def test_epoch_seconds_are_refused_never_stored_in_1970(ts: float) -> None:
    # 1.7e9 read as milliseconds is January 1970, not November 2023: never guessed,
    # never stored; the sender is told what it looks like and what to send.
    with pytest.raises(InvalidInput) as caught:
        parse({"ts": ts, "values": {"x": 1}})
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [("#/ts", SECONDS_HINT)]


def test_a_number_that_is_no_time_in_seconds_either_is_only_too_early() -> None:
    # 10**11 s is the year 5138: no hint that would mislead.
    for ts in (0, 5, 10**11, 946_684_799_999):
        with pytest.raises(InvalidInput) as caught:
            parse({"ts": ts, "values": {"x": 1}})
        assert [e.detail for e in caught.value.errors] == ["before 2000-01-01"], ts


def test_the_first_millisecond_of_2000_is_admitted() -> None:
    telemetry = parse({"ts": 946_684_800_000, "values": {"x": 1}})
    assert telemetry.readings[0].ts_us == 946_684_800_000_000
    assert parse({"ts": "2000-01-01T00:00:00Z", "values": {"x": 1}}).readings


@pytest.mark.parametrize("body", [{"values": {"x": 1}}, {"ts": None, "values": {"x": 1}}])
def test_missing_ts_means_time_received(body: dict[str, Any]) -> None:
    telemetry = parse(body)
    assert telemetry.readings[0].ts_us == RECEIVED_US


def test_ts_over_five_minutes_in_future_is_rejected() -> None:
    ts = (RECEIVED + timedelta(minutes=5, seconds=1)).isoformat()
    assert pointers({"ts": ts, "values": {"x": 1}}) == ["#/ts"]


def test_ts_four_minutes_in_future_is_accepted() -> None:
    ts = RECEIVED + timedelta(minutes=4)
    telemetry = parse({"ts": ts.isoformat(), "values": {"x": 1}})
    assert telemetry.readings[0].ts_us == to_micros(ts)


def test_future_skew_is_configurable() -> None:
    ts = (RECEIVED + timedelta(minutes=2)).isoformat()
    assert pointers({"ts": ts, "values": {"x": 1}}, max_future_skew=60.0) == ["#/ts"]


def test_future_is_judged_against_received_at_not_the_clock() -> None:
    # Replaying old input: "now" is when it arrived, so a year-old future ts still counts.
    received = datetime(2020, 1, 1, tzinfo=UTC)
    ts = (received + timedelta(hours=1)).isoformat()
    assert pointers({"ts": ts, "values": {"x": 1}}, received_at=received) == ["#/ts"]


@pytest.mark.parametrize("ts", ["1969-12-31T23:59:59Z", "1999-12-31T23:59:59.999999Z", -1000])
def test_ts_before_2000_is_rejected(ts: str | int) -> None:
    assert pointers({"ts": ts, "values": {"x": 1}}) == ["#/ts"]


@pytest.mark.parametrize("ts", [True, False])
def test_bool_ts_is_rejected(ts: bool) -> None:
    assert pointers({"ts": ts, "values": {"x": 1}}) == ["#/ts"]


def test_unparseable_ts_is_rejected() -> None:
    assert pointers({"ts": "yesterday", "values": {"x": 1}}) == ["#/ts"]


# --- metric names ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t", "temp_1", "a.b-c", "X" * 64, "0"])
def test_valid_metric_names_are_accepted(name: str) -> None:
    assert parse({"values": {name: 1}}).readings[0].metric == name


@pytest.mark.parametrize(
    ("name", "pointer"),
    [
        ("x" * 65, "#/values/" + "x" * 65),
        ("has space", "#/values/has space"),
        ("temp\n", "#/values/temp\n"),
        ("é", "#/values/é"),
        # RFC 6901 escapes "/" in a pointer segment.
        ("a/b", "#/values/a~1b"),
    ],
)
def test_invalid_metric_name_is_rejected_with_pointer(name: str, pointer: str) -> None:
    assert pointers({"values": {name: 1}}) == [pointer]


def test_empty_metric_name_is_rejected() -> None:
    assert pointers({"values": {"": 1}}) == ["#/values/"]


# --- values ------------------------------------------------------------------------


def test_numbers_become_readings_and_ints_become_floats() -> None:
    telemetry = parse({"values": {"int": 3, "float": 2.5, "neg": -1}})
    assert telemetry.state == ()
    values = {r.metric: r.value for r in telemetry.readings}
    assert values == {"int": 3.0, "float": 2.5, "neg": -1.0}
    assert all(type(r.value) is float for r in telemetry.readings)


def test_non_numbers_become_state_updates() -> None:
    state_values: dict[str, Any] = {
        "door": "open",
        "armed": True,
        "off": False,
        "fault": None,
        "cfg": {"mode": "eco", "level": 2},
        "zones": [1, "b"],
    }
    telemetry = parse({"values": {"temp": 20, **state_values}})
    assert [r.metric for r in telemetry.readings] == ["temp"]
    assert telemetry.state == tuple(
        StateUpdate("dev-1", key, RECEIVED_US, value) for key, value in state_values.items()
    )
    # Booleans are state, never the readings 1.0 / 0.0.
    assert telemetry.state[1].value is True


@pytest.mark.parametrize("raw", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_value_is_rejected_with_pointer(raw: str) -> None:
    assert pointers('{"values": {"ok": 1, "bad": ' + raw + "}}") == ["#/values/bad"]


@pytest.mark.parametrize("nested", ['{"a": [1, 1e999]}', '[{"deep": {"x": -1e999}}]'])
def test_nested_non_finite_in_state_is_rejected(nested: str) -> None:
    assert pointers('{"values": {"cfg": ' + nested + "}}") == ["#/values/cfg"]


def test_empty_values_is_rejected() -> None:
    assert pointers({"values": {}}) == ["#/values"]


def test_missing_values_is_rejected() -> None:
    assert pointers({"ts": "2026-01-01T00:00:00Z"}) == ["#/values"]


def test_extra_fields_are_rejected() -> None:
    assert pointers({"values": {"x": 1}, "device": "other"}) == ["#/device"]


@pytest.mark.parametrize("raw", ["not json", "{", b"\xff\xfe", ""])
def test_invalid_json_points_at_the_whole_body(raw: str | bytes) -> None:
    assert pointers(raw) == ["#"]


@pytest.mark.parametrize("body", ['"text"', "42", "null"])
def test_body_that_is_neither_object_nor_list_is_rejected(body: str) -> None:
    assert pointers(body) == ["#"]


def test_list_item_error_points_at_the_item() -> None:
    body = [{"values": {"x": 1}}, {"values": {}}]
    assert pointers(body) == ["#/1/values"]


def test_every_bad_list_item_is_reported() -> None:
    body = [{"values": {"x": 1e308}}, {"ts": True, "values": {"x": 1}}, {"values": {"a b": 1}}]
    assert pointers(body) == ["#/1/ts", "#/2/values/a b"]


# --- the words of a refusal: the rules' own, the same on every transport -----------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"ts": 1_767_269_100_001, "values": {"x": 1}}, ("#/ts", "more than 300 s in the future")),
        ({"ts": 10**30, "values": {"x": 1}}, ("#/ts", "more than 300 s in the future")),
        (
            {"ts": "2026-01-01T12:05:00.000001Z", "values": {"x": 1}},
            ("#/ts", "more than 300 s in the future"),
        ),
        ({"ts": -1, "values": {"x": 1}}, ("#/ts", "before 2000-01-01")),
        ({"ts": -(10**30), "values": {"x": 1}}, ("#/ts", "before 2000-01-01")),
        ({"ts": "1999-12-31T23:59:59Z", "values": {"x": 1}}, ("#/ts", "before 2000-01-01")),
        ({"ts": 1_767_268_800, "values": {"x": 1}}, ("#/ts", SECONDS_HINT)),
        ({"values": {"a b": 1}}, ("#/values/a b", "must match ^[A-Za-z0-9_.-]{1,64}$")),
        ('{"values": {"x": NaN}}', ("#/values/x", "must be a finite number")),
        ('{"values": {"cfg": [1e999]}}', ("#/values/cfg", "numbers must be finite")),
    ],
    ids=[
        *("future", "far-future", "future-iso", "before-2000", "far-past", "before-2000-iso"),
        *("seconds", "name", "nan", "state"),
    ],
)
def test_a_refusal_says_what_the_rule_says(body: Any, error: tuple[str, str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(body)
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [error]


def test_the_last_admitted_moment_is_received_plus_the_skew() -> None:
    ts = RECEIVED + timedelta(seconds=300)
    assert parse({"ts": ts.isoformat(), "values": {"x": 1}}).readings[0].ts_us == to_micros(ts)


def test_too_many_values_says_how_many() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse({"values": {"x": 1, "y": 2, "z": "on"}}, max_batch_readings=2)
    assert caught.value.detail == "batch holds 3 values; the limit is 2"
    assert [(e.pointer, e.detail) for e in caught.value.errors] == [("#", "too many values")]


# --- limits ------------------------------------------------------------------------


def test_batch_at_the_reading_limit_is_accepted() -> None:
    body = [{"ts": HOUR_AGO_MS + i, "values": {"x": i}} for i in range(5)]
    assert len(parse(body, max_batch_readings=5).readings) == 5


def test_batch_over_the_reading_limit_is_too_large() -> None:
    body = [{"ts": HOUR_AGO_MS + i, "values": {"x": i, "y": i}} for i in range(3)]
    with pytest.raises(PayloadTooLarge) as caught:
        parse(body, max_batch_readings=5)
    assert caught.value.reason == "payload-too-large"
    assert [e.pointer for e in caught.value.errors] == ["#"]


def test_state_fields_count_against_the_batch_limit() -> None:
    # State takes queue space like readings do, so a body of state alone cannot
    # outgrow the ingest queue.
    telemetry = parse({"values": {"x": 1, "a": "on", "b": "off"}}, max_batch_readings=3)
    assert (len(telemetry.readings), len(telemetry.state)) == (1, 2)
    with pytest.raises(PayloadTooLarge):
        parse({"values": {"x": 1, "a": "on", "b": "off"}}, max_batch_readings=2)


# --- property ----------------------------------------------------------------------

metric_names = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@hypothesis_settings(database=None, max_examples=200)
@given(values=st.dictionaries(metric_names, finite_floats, min_size=1, max_size=20))
def test_any_finite_values_round_trip_to_readings(values: dict[str, float]) -> None:
    telemetry = parse({"ts": 1_700_000_000_000, "values": values})
    assert telemetry.state == ()
    assert {r.metric: r.value for r in telemetry.readings} == values
    assert {r.ts_us for r in telemetry.readings} == {1_700_000_000_000_000}
