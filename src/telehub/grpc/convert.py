"""Domain values to and from protobuf messages; no logic beyond the change of form."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from telehub.core.ports import Aggregate, LatestValues
from telehub.domain.commands import Command, CommandStatus
from telehub.domain.devices import Device
from telehub.domain.live import Event
from telehub.domain.readings import Reading, StateUpdate, Telemetry
from telehub.domain.typed_batch import Limits, SeriesColumns, assemble
from telehub.errors import FieldError, InvalidInput
from telehub.v1 import commands_pb2, devices_pb2, live_pb2, telemetry_pb2

AGGREGATES = {
    telemetry_pb2.AGGREGATE_UNSPECIFIED: Aggregate.AVG,
    telemetry_pb2.AGGREGATE_AVG: Aggregate.AVG,
    telemetry_pb2.AGGREGATE_MIN: Aggregate.MIN,
    telemetry_pb2.AGGREGATE_MAX: Aggregate.MAX,
    telemetry_pb2.AGGREGATE_SUM: Aggregate.SUM,
    telemetry_pb2.AGGREGATE_COUNT: Aggregate.COUNT,
}
COMMAND_STATUS = {
    CommandStatus.PENDING: commands_pb2.COMMAND_STATUS_PENDING,
    CommandStatus.QUEUED: commands_pb2.COMMAND_STATUS_QUEUED,
    CommandStatus.SENT: commands_pb2.COMMAND_STATUS_SENT,
    CommandStatus.DELIVERED: commands_pb2.COMMAND_STATUS_DELIVERED,
    CommandStatus.ACKED: commands_pb2.COMMAND_STATUS_ACKED,
    CommandStatus.FAILED: commands_pb2.COMMAND_STATUS_FAILED,
    CommandStatus.EXPIRED: commands_pb2.COMMAND_STATUS_EXPIRED,
}


def micros_of(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1_000


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    seconds, micros = divmod(us, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1_000)


def optional_timestamp(us: int | None) -> timestamp_pb2.Timestamp | None:
    return None if us is None else timestamp(us)


def telemetry_of(batch: telemetry_pb2.ReadingBatch, *, limits: Limits) -> Telemetry:
    """The batch as validated Telemetry (the domain checks it: ``assemble``)."""
    device_id = batch.device_id
    received_us = limits.received_us
    readings = [
        Reading(
            device_id,
            r.metric,
            micros_of(r.ts) if r.HasField("ts") else received_us,
            r.value,
        )
        for r in batch.readings
    ]
    series = [SeriesColumns(s.metric, list(s.values), list(s.timestamps_us)) for s in batch.series]
    state = [
        StateUpdate(
            device_id,
            s.key,
            micros_of(s.ts) if s.HasField("ts") else received_us,
            plain_value(s.value),
            ("state", i, "value"),
        )
        for i, s in enumerate(batch.state)
    ]
    return assemble(device_id, readings=readings, series=series, state=state, limits=limits)


def batch_of(
    telemetry: Telemetry, metrics: frozenset[str] | None = None
) -> telemetry_pb2.ReadingBatch:
    """The readings of a submission (only ``metrics``, when given)."""
    return telemetry_pb2.ReadingBatch(
        device_id=telemetry.device_id,
        readings=[
            telemetry_pb2.Reading(metric=r.metric, value=r.value, ts=timestamp(r.ts_us))
            for r in telemetry.readings
            if metrics is None or r.metric in metrics
        ],
    )


def plain_value(message: struct_pb2.Value) -> Any:
    """A Value as Python, keeping NaN (json_format refuses it) so validation can name it."""
    kind = message.WhichOneof("kind")
    if kind == "number_value":
        number = message.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return message.string_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return {k: plain_value(v) for k, v in message.struct_value.fields.items()}
    if kind == "list_value":
        return [plain_value(v) for v in message.list_value.values]
    return None


def value(data: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    json_format.ParseDict(data, out)
    return out


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return {key: plain_value(item) for key, item in message.fields.items()}


def interval_of(request: telemetry_pb2.RangeRequest) -> str | None:
    """The bucket width as the core's interval text; whole milliseconds only."""
    if not request.HasField("interval"):
        return None
    nanos = request.interval.ToNanoseconds()
    if nanos <= 0 or nanos % 1_000_000:
        raise InvalidInput(
            "interval must be a positive whole number of milliseconds",
            [FieldError(detail="positive, whole milliseconds", parameter="interval")],
        )
    millis = nanos // 1_000_000
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"  # as a REST user would have written it
    return f"{millis}ms"


def latest(device_id: str, values: LatestValues) -> telemetry_pb2.LatestResponse:
    return telemetry_pb2.LatestResponse(
        device_id=device_id,
        readings=[
            telemetry_pb2.Reading(metric=m, value=p.value, ts=timestamp(p.ts_us))
            for m, p in sorted(values.readings.items())
        ],
        state=[
            telemetry_pb2.StateValue(key=k, value=value(v), ts=timestamp(ts_us))
            for k, (ts_us, v) in sorted(values.state.items())
        ],
    )


def device(d: Device) -> devices_pb2.Device:
    presence = {
        None: devices_pb2.PRESENCE_UNSPECIFIED,
        True: devices_pb2.PRESENCE_ONLINE,
        False: devices_pb2.PRESENCE_OFFLINE,
    }[d.online]
    return devices_pb2.Device(
        id=d.id,
        name=d.name,
        attributes=struct(d.attributes),
        created_at=timestamp(d.created_us),
        last_seen=optional_timestamp(d.last_seen_us),
        presence=presence,
        presence_changed_at=optional_timestamp(d.presence_us),
    )


def command(c: Command) -> commands_pb2.Command:
    return commands_pb2.Command(
        id=c.id,
        device_id=c.device_id,
        name=c.name,
        params=struct(c.params),
        status=COMMAND_STATUS[c.status],
        created_at=timestamp(c.created_us),
        expires_at=timestamp(c.expires_us),
        sent_at=optional_timestamp(c.sent_us),
        delivered_at=optional_timestamp(c.delivered_us),
        done_at=optional_timestamp(c.done_us),
        result=value(c.result) if c.result is not None else None,
        batch_id=c.batch_id or "",
    )


def presence_event(event: Event) -> live_pb2.LiveEvent:
    online = bool(event.data.get("online"))
    return live_pb2.LiveEvent(
        presence=live_pb2.PresenceChange(
            device_id=event.device_id or "",
            presence=devices_pb2.PRESENCE_ONLINE if online else devices_pb2.PRESENCE_OFFLINE,
            at=timestamp(event.at_us),
        ),
        at=timestamp(event.at_us),
    )


def command_event(event: Event) -> live_pb2.LiveEvent:
    """A command's status change as logged (its params and deadlines are not in the log)."""
    data = event.data
    status = COMMAND_STATUS[CommandStatus(data["status"])]
    change = commands_pb2.Command(
        id=data["command_id"],
        device_id=data["device_id"],
        name=data["name"],
        status=status,
        result=value(data["result"]) if data.get("result") is not None else None,
        batch_id=data.get("batch_id") or "",
    )
    if not CommandStatus(data["status"]).open:  # acked, failed or expired
        change.done_at.CopyFrom(timestamp(event.at_us))
    elif status == commands_pb2.COMMAND_STATUS_SENT:
        change.sent_at.CopyFrom(timestamp(event.at_us))
    elif status == commands_pb2.COMMAND_STATUS_DELIVERED:
        change.delivered_at.CopyFrom(timestamp(event.at_us))
    return live_pb2.LiveEvent(command=change, at=timestamp(event.at_us))
