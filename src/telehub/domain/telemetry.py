"""The telemetry wire body shared by HTTP, MQTT and gRPC ingest.

A body is one message ``{"ts": ..., "values": {...}}`` or a list of them.
Numbers become readings; every other JSON value becomes device state.
The model here is the reference decoder; the fast path for the common body
(:mod:`telehub.domain.telemetry_fast_path`, tried first by
:func:`parse_telemetry_json`) and the state report are others. All of them
check by the rules of :mod:`telehub.domain.rules`, so every transport rejects
the same input with the same detail and pointer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from telehub.domain.readings import Reading, StateUpdate, Telemetry, to_micros
from telehub.domain.rules import (
    BAD_METRIC_NAME,
    EARLIEST,
    EARLIEST_US,
    METRIC_NAME_PATTERN,
    NOT_FINITE,
    STATE_NOT_FINITE,
    TimeWindow,
    check_size,
    is_finite,
    is_metric_name,
)
from telehub.domain.rules import all_finite as all_finite  # its import path before the rules
from telehub.domain.telemetry_fast_path import decode_simple_body_in
from telehub.errors import FieldError, InvalidInput

_MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
_new_tuple = tuple.__new__


def _metric_name(name: str) -> str:
    if not is_metric_name(name):
        raise ValueError(BAD_METRIC_NAME)
    return name


# The rule, not a pydantic pattern, so its refusal has the rule's words; the
# schema still states the pattern.
MetricName = Annotated[
    str,
    AfterValidator(_metric_name),
    WithJsonSchema({"type": "string", "pattern": METRIC_NAME_PATTERN}),
]


def _window(info: ValidationInfo) -> TimeWindow:
    """The time window of this validation: the caller's (context ``window``), or one
    built from context ``now`` and ``max_future_skew``, or from the clock."""
    ctx = info.context or {}
    window: TimeWindow | None = ctx.get("window")
    if window is None:
        now: datetime = ctx.get("now") or datetime.now(UTC)
        window = TimeWindow.after(to_micros(now), ctx.get("max_future_skew", 300.0))
    return window


# What a sender of a number before 2000 is told to do instead.
MS_ADVICE = "send milliseconds, or an ISO 8601 string"


def _epoch_ms_or_iso(value: Any, info: ValidationInfo) -> Any:
    """Numbers are epoch milliseconds (never guessed seconds); naive ISO strings are UTC.

    A number outside the time window is refused before it becomes a datetime,
    saying which side; one before 2000 that would be a time in seconds says so.
    """
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO 8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        if not is_finite(value):
            raise ValueError("ts must be finite")
        window = _window(info)
        problem = window.problem_of_number(value, unit_us=1000, advice=MS_ADVICE)
        if problem is not None:
            raise ValueError(problem)
        try:
            if isinstance(value, int):  # exact: the fast path's ts * 1000 agrees
                return _MIN_TS + timedelta(milliseconds=value)
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):  # a skew of centuries
            raise ValueError(window.too_late) from None
    return value


# Finiteness is checked in ``to_telemetry``, which walks every value anyway:
# a validator per value here would cost a Python call per reading.
FieldValue = float | bool | str | list[Any] | dict[str, Any] | None


class TelemetryMessage(BaseModel):
    """One timestamped set of values from one device."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ts": "2026-11-24T10:00:00Z", "values": {"temperature": 21.5, "humidity": 40}}
            ]
        },
    )

    ts: Annotated[
        datetime | None,
        BeforeValidator(_epoch_ms_or_iso),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {
                        "type": "integer",
                        "minimum": EARLIEST_US // 1000,
                        "description": f"epoch milliseconds, from {EARLIEST}",
                    },
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        None,
        description=(
            f"ISO 8601 (naive means UTC) or epoch milliseconds, from {EARLIEST} (a number "
            "before it is refused: epoch seconds are not guessed); default: time received"
        ),
    )
    values: dict[MetricName, FieldValue] = Field(
        ...,
        min_length=1,
        description="numbers are readings; strings, booleans, null, objects and lists are state",
    )

    @field_validator("ts")
    @classmethod
    def _in_window(cls, ts: datetime | None, info: ValidationInfo) -> datetime | None:
        if ts is None:
            return None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        problem = _window(info).problem(to_micros(ts))
        if problem is not None:
            raise ValueError(problem)
        return ts


def _shape(value: Any) -> str:
    return "batch" if isinstance(value, list) else "message"


# A tagged union: errors come only from the shape the body actually has.
_BodyShape = Annotated[
    Annotated[TelemetryMessage, Tag("message")] | Annotated[list[TelemetryMessage], Tag("batch")],
    Discriminator(_shape),
]


class TelemetryBody(RootModel[_BodyShape]):
    """The request body: one message or a list of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ts": "2026-11-24T10:00:00Z", "values": {"temperature": 21.5, "humidity": 40}},
                [
                    {"ts": 1795514400000, "values": {"temperature": 21.5}},
                    {"ts": 1795514460000, "values": {"temperature": 21.7, "door": "open"}},
                ],
            ]
        }
    )

    def messages(self) -> Sequence[TelemetryMessage]:
        return self.root if isinstance(self.root, list) else [self.root]


# An error names its field and may quote the input, but only this much of it:
# a key or value of 900 KB must not come back whole in the answer or the
# rejected-inputs record.
ECHO_CHARS = 200


def excerpt(text: str, limit: int = ECHO_CHARS) -> str:
    """``text``, or its first ``limit`` characters and an ellipsis: what an error may echo."""
    return text if len(text) <= limit else text[:limit] + "…"


def loc_to_pointer(loc: Sequence[int | str]) -> str:
    """A pydantic error location as an RFC 6901 JSON pointer in URI-fragment form.

    Each part is cut to an excerpt: a location may hold a key of any length.
    """
    parts = [excerpt(str(p)).replace("~", "~0").replace("/", "~1") for p in loc if p != "[key]"]
    return "#/" + "/".join(parts) if parts else "#"


_BRANCH_TAGS = {"message", "batch", "[key]"}


def _is_union_branch(part: int | str) -> bool:
    return isinstance(part, str) and (part in _BRANCH_TAGS or part.startswith("function-"))


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """Pointers to what is wrong, without pydantic's union-branch noise."""
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not _is_union_branch(p)]
        key = loc_to_pointer(loc)
        msg = excerpt(err["msg"].removeprefix("Value error, "))
        if (key, msg) not in seen:
            seen.add((key, msg))
            out.append(FieldError(detail=msg, pointer=key))
    return out


def to_telemetry(
    device_id: str,
    body: TelemetryBody,
    *,
    received_at: datetime,
    max_batch_readings: int,
) -> Telemetry:
    """Split a validated body into numeric readings and state updates for one device."""
    default_us = to_micros(received_at)
    readings: list[Reading] = []
    state: list[StateUpdate] = []
    errors: list[FieldError] = []
    many = isinstance(body.root, list)
    for position, msg in enumerate(body.messages()):
        index = position if many else None
        ts_us = to_micros(msg.ts) if msg.ts is not None else default_us
        for key, value in msg.values.items():
            # type() not isinstance(): bool is an int but is state, and this is the hot loop.
            kind = type(value)
            if kind is float or kind is int:
                number = float(value)  # type: ignore[arg-type]
                if not is_finite(number):
                    errors.append(_refused(index, key, NOT_FINITE))
                readings.append(_new_tuple(Reading, (device_id, key, ts_us, number)))
            else:
                if (kind is list or kind is dict) and not all_finite(value):
                    errors.append(_refused(index, key, STATE_NOT_FINITE))
                where = ("values", key) if index is None else (index, "values", key)
                state.append(StateUpdate(device_id, key, ts_us, value, where))
    if errors:
        raise InvalidInput("telemetry body is invalid", errors)
    check_size(len(readings) + len(state), max_batch_readings)
    return Telemetry(device_id=device_id, readings=tuple(readings), state=tuple(state))


def _refused(index: int | None, key: str, detail: str) -> FieldError:
    where: list[int | str] = ["values", key] if index is None else [index, "values", key]
    return FieldError(detail=detail, pointer=loc_to_pointer(where))


def parse_telemetry_json(
    device_id: str,
    raw: bytes | str,
    *,
    received_at: datetime,
    max_batch_readings: int,
    max_future_skew: float,
) -> Telemetry:
    """Decode and validate a raw body (for transports that hand over bytes: MQTT, gRPC)."""
    window = TimeWindow.after(to_micros(received_at), max_future_skew)
    fast = decode_simple_body_in(device_id, raw, window, max_batch_readings)
    if fast is not None:
        return fast
    try:
        body = TelemetryBody.model_validate_json(raw, context={"window": window})
    except ValidationError as exc:
        raise InvalidInput("telemetry body is invalid", validation_errors(exc)) from None
    return to_telemetry(
        device_id, body, received_at=received_at, max_batch_readings=max_batch_readings
    )


class StateBody(RootModel[dict[MetricName, FieldValue]]):
    """A device's state report: a flat object of keys to any JSON value, all kept as state.

    Unlike telemetry, a number here is state too (a setpoint, a firmware build).
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"firmware": "1.4.2", "door": "open", "setpoint": 21}]}
    )


def parse_state_json(
    device_id: str, raw: bytes | str, *, received_at: datetime, max_batch_readings: int
) -> Telemetry:
    """Decode a state report; every key is stamped with the time it was received."""
    try:
        body = StateBody.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput("state body is invalid", validation_errors(exc)) from None
    if not body.root:
        raise InvalidInput(
            "state body is empty", [FieldError(detail="at least one key", pointer="#")]
        )
    check_size(len(body.root), max_batch_readings)
    bad = [key for key, value in body.root.items() if not all_finite(value)]
    if bad:
        raise InvalidInput(
            "state body is invalid",
            [FieldError(detail=STATE_NOT_FINITE, pointer=loc_to_pointer([k])) for k in bad],
        )
    ts_us = to_micros(received_at)
    state = tuple(
        StateUpdate(device_id, key, ts_us, value, (key,)) for key, value in body.root.items()
    )
    return Telemetry(device_id=device_id, readings=(), state=state)
