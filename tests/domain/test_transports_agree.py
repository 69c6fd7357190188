"""Across transports: the same values sent as a JSON body and as a gRPC batch are
accepted or refused alike, in the same words, at the same places (each in its own
form); so are a JSON state report and gRPC state.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.domain.rules import NOT_FINITE, STATE_NOT_FINITE
from telehub.domain.state_keys import metric_state_refusal
from telehub.domain.telemetry import loc_to_pointer, parse_state_json
from telehub.domain.typed_batch import assemble
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge
from tests.domain.decoders_support import (
    DEVICE,
    LIMITS,
    MAX,
    NOW,
    NOW_MS,
    NOW_US,
    QUICK,
    floats,
    json_values,
    metrics,
    outcome,
    parse_json,
)

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
    st.sampled_from([946_684_799_999, 946_684_800_000, NOW_MS // 1000]),
)
cross_messages = st.lists(
    st.tuples(cross_ts_ms, st.dictionaries(metrics, cross_values, min_size=1, max_size=3)),
    min_size=1,
    max_size=3,
)

FINITE_DETAILS = {NOT_FINITE, STATE_NOT_FINITE}


def body_of(messages: list[tuple[int | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"values": v} if ts is None else {"ts": ts, "values": v} for ts, v in messages]


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
                state.append(StateUpdate(DEVICE, key, ts_us, value, ("state", len(state), "value")))
                where |= {f"{row}/key": value_at, f"{row}/value": value_at}
            where[f"{row}/ts"] = ts_at
    return readings, state, where


def located(errors: list[FieldError], where: dict[str, str] | None = None) -> set[tuple[str, str]]:
    """Each error as (JSON pointer, detail): a set, as one JSON field may be many gRPC rows.

    The advice on a timestamp's unit is each form's own (a JSON number is
    milliseconds, a gRPC row's ts a Timestamp), so it is left out: the rule's
    words before it must agree.
    """
    return {
        ((where or {}).get(e.pointer or "", e.pointer or ""), e.detail.partition(": looks like")[0])
        for e in errors
    }


@QUICK
@given(cross_messages)
def test_a_json_body_and_a_grpc_batch_of_the_same_values_agree(
    messages: list[tuple[int | None, dict[str, Any]]],
) -> None:
    body = body_of(messages)
    from_json = outcome(lambda: parse_json(json.dumps(body)))
    readings, state, where = as_batch(messages)
    from_grpc = outcome(
        lambda: assemble(DEVICE, readings=readings, series=[], state=state, limits=LIMITS)
    )
    if isinstance(from_json, Telemetry) or isinstance(from_grpc, Telemetry):
        assert from_json == from_grpc
        # Each state value knows where it was, in its own form: the same place.
        assert isinstance(from_json, Telemetry)
        assert isinstance(from_grpc, Telemetry)
        assert [loc_to_pointer(s.at) for s in from_json.state] == [
            where[loc_to_pointer(s.at)] for s in from_grpc.state
        ]
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


@QUICK
@given(cross_messages, st.sets(metrics, max_size=3))
def test_state_for_a_metric_is_refused_alike_on_both_transports(
    messages: list[tuple[int | None, dict[str, Any]]], known: set[str]
) -> None:
    # ``known``: the metrics the device has readings of; a key the body gives a number
    # elsewhere is one too.
    from_json = outcome(lambda: parse_json(json.dumps(body_of(messages))))
    readings, state, where = as_batch(messages)
    from_grpc = outcome(
        lambda: assemble(DEVICE, readings=readings, series=[], state=state, limits=LIMITS)
    )
    if not (isinstance(from_json, Telemetry) and isinstance(from_grpc, Telemetry)):
        return  # refused before: the test above compares those refusals
    json_refusal = metric_state_refusal(from_json, known)
    grpc_refusal = metric_state_refusal(from_grpc, known)
    metrics_given = known | {r.metric for r in from_json.readings}
    assert (json_refusal is None) == (grpc_refusal is None)
    assert (json_refusal is None) == all(s.key not in metrics_given for s in from_json.state)
    if json_refusal is not None and grpc_refusal is not None:
        assert json_refusal.detail == grpc_refusal.detail
        assert located(json_refusal.errors) == located(grpc_refusal.errors, where)


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
