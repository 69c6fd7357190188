"""What the sync and async gRPC clients share: request building and error decoding.

Kept apart from the clients so both build exactly the same messages and raise
exactly the same errors for the same call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

import grpc
from google.protobuf import any_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from telehub.domain.readings import to_micros
from telehub.v1 import commands_pb2, devices_pb2, live_pb2, telemetry_pb2

AGGREGATES = {
    "avg": telemetry_pb2.AGGREGATE_AVG,
    "min": telemetry_pb2.AGGREGATE_MIN,
    "max": telemetry_pb2.AGGREGATE_MAX,
    "sum": telemetry_pb2.AGGREGATE_SUM,
    "count": telemetry_pb2.AGGREGATE_COUNT,
}
Values = Mapping[str, float] | Mapping[str, Any]
_DETAILS_KEY = "grpc-status-details-bin"  # google.rpc.Status, by gRPC convention


class GrpcError(Exception):
    """A gRPC call the server refused, with its rich status details decoded.

    ``reason`` is telehub's stable error code (the HTTP problem type's slug);
    ``field_violations`` name each bad field (``readings[3].value``);
    ``retry_after`` is set when ingest pushed back; ``summary`` is what a
    Publish stream had committed before it ended, whatever ended it (resend
    from ``summary.batches``: every batch before it was committed or rejected).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        detail: str,
        *,
        reason: str | None = None,
        field_violations: list[tuple[str, str]] | None = None,
        retry_after: float | None = None,
        summary: telemetry_pb2.PublishSummary | None = None,
    ) -> None:
        resume = (
            f" (its first {summary.batches} batches are answered: resend from batch "
            f"{summary.batches})"
            if summary is not None
            else ""
        )
        super().__init__(f"{code.name}: {detail}{resume}")
        self.code = code
        self.detail = detail
        self.reason = reason
        self.field_violations = field_violations or []
        self.retry_after = retry_after
        self.summary = summary


def decode_error(error: grpc.RpcError | grpc.aio.AioRpcError) -> GrpcError:
    code = error.code()
    detail = error.details() or ""
    found: dict[str, Any] = {}
    for packed in _details(error):
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        summary = telemetry_pb2.PublishSummary()
        if packed.Unpack(info):
            found["reason"] = info.reason
        elif packed.Unpack(bad):
            found["field_violations"] = [(v.field, v.description) for v in bad.field_violations]
        elif packed.Unpack(retry):
            found["retry_after"] = retry.retry_delay.ToNanoseconds() / 1e9
        elif packed.Unpack(summary):
            found["summary"] = summary
    return GrpcError(code, detail, **found)


def _details(error: grpc.RpcError | grpc.aio.AioRpcError) -> Sequence[any_pb2.Any]:
    """The rich status details of the trailers, read directly: grpc_status's from_call
    raises ValueError when the transport replaced the server's code (RESOURCE_EXHAUSTED
    for trailers over the client's limit, say), and what the server said still counts."""
    trailers: Any = error.trailing_metadata() or ()  # grpc.aio: Metadata; grpc: tuples
    for key, value in trailers:
        if key == _DETAILS_KEY:
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:
                return ()
            return list(status.details)
    return ()


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _utc(ts: datetime) -> datetime:
    """A naive time is UTC, as everywhere in telehub."""
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def timestamp(ts: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(_utc(ts))
    return out


def batch(
    device_id: str,
    values: Values,
    *,
    ts: datetime | None = None,
) -> telemetry_pb2.ReadingBatch:
    """One timestamped set of values: numbers become readings, anything else state."""
    out = telemetry_pb2.ReadingBatch(device_id=device_id)
    stamp = timestamp(ts) if ts is not None else None
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            reading = out.readings.add(metric=key, value=float(value))
            if stamp is not None:
                reading.ts.CopyFrom(stamp)
        else:
            state = out.state.add(key=key)
            json_format.ParseDict(value, state.value)
            if stamp is not None:
                state.ts.CopyFrom(stamp)
    return out


def series_batch(
    device_id: str,
    values: Mapping[str, Sequence[float]],
    *,
    timestamps: Sequence[datetime] | None = None,
) -> telemetry_pb2.ReadingBatch:
    """Many readings per metric in the compact form: ``values[metric][i]`` was measured
    at ``timestamps[i]`` (or, with no timestamps, when the hub receives the batch)."""
    stamps = [to_micros(_utc(ts)) for ts in timestamps] if timestamps is not None else []
    return telemetry_pb2.ReadingBatch(
        device_id=device_id,
        series=[
            telemetry_pb2.Series(metric=metric, values=list(column), timestamps_us=stamps)
            for metric, column in values.items()
        ],
    )


class RangeOptions(TypedDict, total=False):
    """What a query may say besides its device (every key optional)."""

    metrics: Iterable[str]  # default: every metric
    start: datetime  # default: end - 24 h
    end: datetime  # default: now
    interval: timedelta  # buckets this wide; default: raw points
    agg: str  # with an interval: avg (default), min, max, sum, count
    limit: int  # points per metric in a page; default 1000
    descending: bool
    page_token: str  # the last point's next_page_token: the rest of that query


class SubscribeOptions(TypedDict, total=False):
    """What a live subscription wants (every key optional)."""

    devices: Iterable[str]  # default: every device
    metrics: Iterable[str]  # default: every metric
    presence: bool  # presence changes too
    commands: bool  # command status changes too
    readings: bool  # default True; False for events only


def range_request(device_id: str, **options: Unpack[RangeOptions]) -> telemetry_pb2.RangeRequest:
    request = telemetry_pb2.RangeRequest(
        device_id=device_id,
        metrics=list(options.get("metrics", ())),
        limit=options.get("limit", 0),
        descending=options.get("descending", False),
        page_token=options.get("page_token", ""),
    )
    if "agg" in options:
        agg = options["agg"]
        if agg not in AGGREGATES:
            raise GrpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"refused before sending: agg is one of {', '.join(AGGREGATES)}",
                reason="invalid-input",
                field_violations=[("aggregate", f"not one of {', '.join(AGGREGATES)}")],
            )
        request.aggregate = AGGREGATES[agg]
    if "start" in options:
        request.start.CopyFrom(timestamp(options["start"]))
    if "end" in options:
        request.end.CopyFrom(timestamp(options["end"]))
    if "interval" in options:
        request.interval.FromTimedelta(options["interval"])
    return request


def subscribe_request(**options: Unpack[SubscribeOptions]) -> live_pb2.SubscribeRequest:
    return live_pb2.SubscribeRequest(
        device_ids=list(options.get("devices", ())),
        metrics=list(options.get("metrics", ())),
        presence=options.get("presence", False),
        commands=options.get("commands", False),
        no_readings=not options.get("readings", True),
    )


def command_request(
    device_id: str, name: str, params: Mapping[str, Any] | None, ttl_s: int
) -> commands_pb2.SendCommandRequest:
    body = struct_pb2.Struct()
    body.update(dict(params or {}))
    return commands_pb2.SendCommandRequest(device_id=device_id, name=name, params=body, ttl_s=ttl_s)


def list_request(
    page_size: int, page_token: str, attributes: Mapping[str, str] | None
) -> devices_pb2.ListDevicesRequest:
    return devices_pb2.ListDevicesRequest(
        page_size=page_size, page_token=page_token, attributes=dict(attributes or {})
    )


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
