"""The telemetry wire body shared by HTTP, MQTT and gRPC ingest.

A body is one message ``{"ts": ..., "values": {...}}`` or a list of them.
Numbers become readings; every other JSON value becomes device state.
Validation lives here, in one place, so every transport rejects the same
input with the same pointer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from telehub.domain.readings import (
    METRIC_NAME_PATTERN,
    Reading,
    StateUpdate,
    Telemetry,
    to_micros,
)
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge

MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
# Metric names already matched: devices send the same few, and a set lookup is
# far cheaper than the pattern. Cleared when full, so it stays bounded.
_KNOWN_NAMES: set[str] = set()
_KNOWN_NAMES_MAX = 10_000


def _epoch_ms_or_iso(value: Any) -> Any:
    """Numbers are epoch milliseconds (never guessed seconds); naive ISO strings are UTC."""
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO 8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("ts must be finite")
        try:
            if isinstance(value, int):  # exact: the fast path's ts * 1000 agrees
                return _MIN_TS + timedelta(milliseconds=value)
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("ts is out of range") from None
    return value


def all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    return True


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
                    {"type": "integer", "description": "epoch milliseconds"},
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        None,
        description="ISO 8601 (naive means UTC) or epoch milliseconds; default: time received",
    )
    values: dict[MetricName, FieldValue] = Field(
        ...,
        min_length=1,
        description="numbers are readings; strings, booleans, null, objects and lists are state",
    )

    @field_validator("ts")
    @classmethod
    def _not_in_future(cls, ts: datetime | None, info: ValidationInfo) -> datetime | None:
        if ts is None:
            return None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        ctx = info.context or {}
        now: datetime = ctx.get("now") or datetime.now(UTC)
        skew = timedelta(seconds=ctx.get("max_future_skew", 300.0))
        if ts > now + skew:
            raise ValueError(f"ts is more than {int(skew.total_seconds())} s in the future")
        if ts < _MIN_TS:
            raise ValueError("ts is before 1970-01-01")
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
    for index, msg in enumerate(body.messages()):
        ts_us = to_micros(msg.ts) if msg.ts is not None else default_us
        for key, value in msg.values.items():
            # type() not isinstance(): bool is an int but is state, and this is the hot loop.
            kind = type(value)
            if kind is float or kind is int:
                number = float(value)  # type: ignore[arg-type]
                if number - number != 0.0:  # inf or nan: the cheapest test
                    errors.append(_not_finite(index if many else None, key))
                readings.append(Reading(device_id, key, ts_us, number))
            else:
                if (kind is list or kind is dict) and not all_finite(value):
                    errors.append(_not_finite(index if many else None, key))
                state.append(StateUpdate(device_id, key, ts_us, value))
    if errors:
        raise InvalidInput("telemetry body is invalid", errors)
    # State fields count too: they take queue space like readings do.
    if len(readings) + len(state) > max_batch_readings:
        raise PayloadTooLarge(
            f"batch holds {len(readings) + len(state)} values; the limit is {max_batch_readings}",
            [FieldError(detail="too many values", pointer="#")],
        )
    return Telemetry(device_id=device_id, readings=tuple(readings), state=tuple(state))


def _not_finite(index: int | None, key: str) -> FieldError:
    where: list[int | str] = ["values", key] if index is None else [index, "values", key]
    return FieldError(detail="value must be a finite number", pointer=loc_to_pointer(where))


def parse_telemetry_json(
    device_id: str,
    raw: bytes | str,
    *,
    received_at: datetime,
    max_batch_readings: int,
    max_future_skew: float,
) -> Telemetry:
    """Decode and validate a raw body (for transports that hand over bytes: MQTT, gRPC)."""
    fast = _simple_body(
        device_id,
        raw,
        received_at=received_at,
        max_batch_readings=max_batch_readings,
        max_future_skew=max_future_skew,
    )
    if fast is not None:
        return fast
    try:
        body = TelemetryBody.model_validate_json(
            raw, context={"now": received_at, "max_future_skew": max_future_skew}
        )
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
    if len(body.root) > max_batch_readings:
        raise PayloadTooLarge(
            f"state holds {len(body.root)} keys; the limit is {max_batch_readings}",
            [FieldError(detail="too many keys", pointer="#")],
        )
    bad = [key for key, value in body.root.items() if not all_finite(value)]
    if bad:
        raise InvalidInput(
            "state body is invalid",
            [FieldError(detail="numbers must be finite", pointer=loc_to_pointer([k])) for k in bad],
        )
    ts_us = to_micros(received_at)
    state = tuple(StateUpdate(device_id, key, ts_us, value) for key, value in body.root.items())
    return Telemetry(device_id=device_id, readings=(), state=state)


def _simple_body(
    device_id: str,
    raw: bytes | str,
    *,
    received_at: datetime,
    max_batch_readings: int,
    max_future_skew: float,
) -> Telemetry | None:
    """The bodies devices and gateways send most — a message or a list of them,
    numbers only, ts absent or epoch ms — decoded without the validator, at a
    fraction of its cost per reading.

    Only input the validator accepts, decoded to exactly what it would produce
    (the same timestamp conversion and checks); anything else returns None and
    the validator decides, with its errors. A test checks the two agree.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    messages = body if type(body) is list else [body]
    if not messages:
        return None
    received_us = to_micros(received_at)
    latest_us = received_us + int(max_future_skew * 1_000_000)
    readings: list[Reading] = []
    for message in messages:
        if not _simple_readings(device_id, message, received_us, latest_us, readings):
            return None
        if len(readings) > max_batch_readings:
            return None
    return Telemetry(device_id=device_id, readings=tuple(readings), state=())


def _simple_readings(
    device_id: str, message: Any, received_us: int, latest_us: int, out: list[Reading]
) -> bool:
    """Append one simple message's readings to ``out``; False if it is not simple."""
    if type(message) is not dict or not 1 <= len(message) <= 2:
        return False
    values = message.get("values")
    if type(values) is not dict or not values:
        return False
    ts = message.get("ts")
    if len(message) == 2 and "ts" not in message:
        return False
    if ts is None:
        ts_us = received_us
    elif type(ts) is int:
        # Integer microseconds, no datetime: what the validator computes, exactly.
        ts_us = ts * 1000
        if ts_us > latest_us or ts_us < 0:
            return False
    else:
        return False
    known = _KNOWN_NAMES
    for key, value in values.items():
        kind = type(value)
        if kind is not float and kind is not int:
            return False
        if key not in known:
            if not _METRIC_NAME.fullmatch(key):
                return False
            if len(known) >= _KNOWN_NAMES_MAX:
                known.clear()
            known.add(key)
        number = float(value)
        if number - number != 0.0:  # inf or nan
            return False
        out.append(Reading(device_id, key, ts_us, number))
    return True
