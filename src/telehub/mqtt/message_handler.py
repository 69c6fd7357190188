"""Inbound MQTT messages → core calls, independent of the client library.

``handle_batch`` returns only when its messages may be acknowledged to the
broker: their readings are committed, or they were bad input and are now
recorded as rejected (acknowledging bad input stops the broker redelivering it forever).
While ingest pushes back or the database is down it waits and retries: the
unacknowledged messages hold the broker's in-flight window, so the broker
slows the stream down instead of anyone dropping data.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from pydantic import ValidationError

from telehub.core.commands import CommandService
from telehub.core.devices import DeviceService
from telehub.core.ingest import IngestResult
from telehub.core.ingest_gate import BodyKind, IngestGate, Submission
from telehub.core.metrics import Metrics
from telehub.domain.commands import CommandAck
from telehub.domain.readings import Telemetry
from telehub.domain.telemetry import validation_errors
from telehub.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    Overloaded,
    RetainedReplay,
    ShuttingDown,
    StorageUnavailable,
    UnknownDevice,
)
from telehub.mqtt.topics import DeviceTopic, TopicKind, parse_topic

log = logging.getLogger(__name__)
TRANSPORT = "mqtt"

_STORAGE_RETRY_MAX = 5.0


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """``retained``: a replay from the broker's retained store (MQTT-3.3.1-9), not a
    message passed on as it was published; only a status may be one (it restores presence)."""

    topic: str
    payload: bytes
    retained: bool = False


class MqttInbound:
    def __init__(
        self,
        *,
        gate: IngestGate,
        devices: DeviceService,
        commands: CommandService,
        metrics: Metrics,
    ) -> None:
        self._gate = gate
        self._devices = devices
        self._commands = commands
        self._metrics = metrics
        # One counter child per kind, looked up once rather than per message.
        self._accepted = {
            kind: metrics.mqtt_messages.labels(kind=kind.value, outcome="accepted")
            for kind in TopicKind
        }

    async def handle_batch(self, messages: Sequence[InboundMessage]) -> None:
        """Store or reject every message; returns when all may be acknowledged.

        Raises only ShuttingDown: then acknowledge none of them (the broker
        delivers them again, and the store keeps one copy of each reading).
        Telemetry and state of the whole batch go to the Ingestor in one call.
        """
        decoded: list[tuple[TopicKind, InboundMessage, Telemetry]] = []
        for message in messages:
            target: DeviceTopic | None = None
            try:
                target = parse_topic(message.topic)
                if message.retained and target.kind is not TopicKind.STATUS:
                    raise _replayed(target)
                if target.kind is TopicKind.STATUS:
                    live = not message.retained
                    await _until_stored(
                        partial(self._presence, target.device_id, message.payload, live=live)
                    )
                elif target.kind is TopicKind.COMMAND_ACK:
                    command_id = target.command_id or ""
                    await _until_stored(
                        partial(self._command_ack, target.device_id, command_id, message.payload)
                    )
                else:
                    kind = BodyKind.STATE if target.kind is TopicKind.STATE else BodyKind.TELEMETRY
                    try:
                        telemetry = await self._gate.decode(
                            transport=TRANSPORT,
                            device_id=target.device_id,
                            payload=message.payload,
                            kind=kind,
                        )
                    except InvalidInput:  # the gate has recorded it
                        self._count_rejected(target)
                        continue
                    decoded.append((target.kind, message, telemetry))
                    continue
            except InvalidInput as exc:
                await self._reject(target, message, exc)
                continue
            self._accepted[target.kind].inc()
        if decoded:
            await self._submit_all(decoded)

    async def _reject(
        self, target: DeviceTopic | None, message: InboundMessage, error: InvalidInput
    ) -> None:
        self._count_rejected(target)
        await self._gate.reject(
            transport=TRANSPORT,
            device_id=target.device_id if target else None,
            error=error,
            payload=message.payload,
        )

    def _count_rejected(self, target: DeviceTopic | None) -> None:
        kind = target.kind.value if target else "unknown"
        self._metrics.mqtt_messages.labels(kind=kind, outcome="rejected").inc()

    async def _presence(self, device_id: str, payload: bytes, *, live: bool) -> None:
        status = payload.strip()
        if status not in (b"online", b"offline"):
            raise InvalidInput(
                "status must be online or offline",
                [FieldError(detail="expected online or offline", pointer="#")],
            )
        online = status == b"online"
        try:
            changed = await self._devices.report_presence(device_id, online=online, live=live)
        except NotFound:
            raise _unknown(device_id) from None
        if changed and online:
            self._commands.wake()  # its queued commands go out now

    async def _command_ack(self, device_id: str, command_id: str, payload: bytes) -> None:
        try:
            ack = CommandAck.model_validate_json(payload)
        except ValidationError as exc:
            errors = validation_errors(exc)
            raise InvalidInput("command acknowledgement is invalid", errors) from None
        await self._commands.acknowledge(
            device_id, command_id, ok=ack.status == "ok", result=ack.result
        )

    async def _submit_all(self, decoded: list[tuple[TopicKind, InboundMessage, Telemetry]]) -> None:
        """Hand everything to the Ingestor; retry what it pushed back until it is taken."""
        storage_delay = 0.1
        pending = decoded
        while pending:
            answers = await self._gate.submit_many(
                [Submission(t, m.payload) for _, m, t in pending], transport=TRANSPORT
            )
            retry: list[tuple[TopicKind, InboundMessage, Telemetry]] = []
            backoff = 0.0
            accepted: Counter[TopicKind] = Counter()
            for item, answer in zip(pending, answers, strict=True):
                kind, _, telemetry = item
                if isinstance(answer, IngestResult):
                    accepted[kind] += 1
                elif isinstance(answer, ShuttingDown):
                    raise answer
                elif isinstance(answer, UnknownDevice):  # recorded by the gate
                    self._count_rejected(DeviceTopic(telemetry.device_id, kind))
                elif isinstance(answer, Overloaded):
                    # Holding the acknowledgement is the backpressure: the broker
                    # stops sending once the in-flight window is full.
                    retry.append(item)
                    backoff = max(backoff, min(answer.retry_after, 1.0))
                else:  # StorageUnavailable, or any failure to commit
                    retry.append(item)
                    backoff = max(backoff, storage_delay)
            for kind, n in accepted.items():
                self._accepted[kind].inc(n)
            if retry:
                if backoff >= storage_delay:
                    log.warning(
                        "could not commit %d MQTT messages; kept unacknowledged, retrying",
                        len(retry),
                    )
                    storage_delay = min(storage_delay * 2, _STORAGE_RETRY_MAX)
                await asyncio.sleep(backoff)
            pending = retry


async def _until_stored(write: Callable[[], Awaitable[None]]) -> None:
    """A status or ack waits out a storage outage as telemetry does: unacknowledged (the
    broker's in-flight window is the backpressure) and tried again."""
    delay = 0.1
    while True:
        try:
            await write()
            return
        except StorageUnavailable as exc:
            log.warning("could not store an MQTT status or ack (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _STORAGE_RETRY_MAX)


def _replayed(target: DeviceTopic) -> RetainedReplay:
    return RetainedReplay(
        f"a retained {target.kind.value} message of {target.device_id!r} replayed by the "
        "broker is not new data and is not stored again; publish it without the retain flag "
        "(clear it with an empty retained message)",
        [FieldError(detail="retained message replayed", parameter="retain")],
    )


def _unknown(device_id: str) -> UnknownDevice:
    return UnknownDevice(
        f"device {device_id!r} does not exist",
        [FieldError(detail="no such device", parameter="topic")],
    )
