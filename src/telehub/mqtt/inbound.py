"""One inbound MQTT message → one core call, independent of the client library.

``handle`` returns only when the message may be acknowledged to the broker:
its readings are committed, or it was bad input and is now recorded as
rejected (acknowledging bad input stops the broker redelivering it forever).
While ingest pushes back or the database is down it waits and retries: the
unacknowledged messages hold the broker's in-flight window, so the broker
slows the stream down instead of anyone dropping data.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from telehub.domain.commands import CommandAck
from telehub.domain.readings import Telemetry
from telehub.domain.telemetry import parse_state_json, parse_telemetry_json, validation_errors
from telehub.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ShuttingDown,
    StorageUnavailable,
    UnknownDevice,
)
from telehub.mqtt.topics import DeviceTopic, TopicKind, parse_topic
from telehub.runtime import Hub

log = logging.getLogger(__name__)

_STORAGE_RETRY_MAX = 5.0


class MqttInbound:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._metrics = hub.metrics
        # One counter child per kind, looked up once rather than per message.
        self._accepted = {
            kind: hub.metrics.mqtt_messages.labels(kind=kind.value, outcome="accepted")
            for kind in TopicKind
        }

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """Store or reject one message; raises only ShuttingDown (then do not acknowledge).

        ``retained`` marks the broker's stored copy replayed on subscribe, not news.
        """
        received_at = datetime.now(UTC)
        device_id: str | None = None
        kind = "unknown"
        try:
            target = parse_topic(topic)
            device_id, kind = target.device_id, target.kind.value
            if target.kind is TopicKind.STATUS:
                await self._presence(target.device_id, payload, live=not retained)
            elif target.kind is TopicKind.COMMAND_ACK:
                await self._command_ack(target.device_id, target.command_id or "", payload)
            else:
                await self._submit(self._decode(target, payload, received_at))
        except InvalidInput as exc:
            self._metrics.mqtt_messages.labels(kind=kind, outcome="rejected").inc()
            await self._hub.rejected.record(
                transport="mqtt", device_id=device_id, error=exc, payload=payload
            )
            return
        self._accepted[target.kind].inc()

    async def _presence(self, device_id: str, payload: bytes, *, live: bool) -> None:
        status = payload.strip()
        if status not in (b"online", b"offline"):
            raise InvalidInput(
                "status must be online or offline",
                [FieldError(detail="expected online or offline", pointer="#")],
            )
        try:
            await self._hub.devices.report_presence(
                device_id, online=status == b"online", live=live
            )
        except NotFound:
            raise _unknown(device_id) from None

    async def _command_ack(self, device_id: str, command_id: str, payload: bytes) -> None:
        try:
            ack = CommandAck.model_validate_json(payload)
        except ValidationError as exc:
            errors = validation_errors(exc)
            raise InvalidInput("command acknowledgement is invalid", errors) from None
        await self._hub.commands.acknowledge(
            device_id, command_id, ok=ack.status == "ok", result=ack.result
        )

    def _decode(self, target: DeviceTopic, payload: bytes, received_at: datetime) -> Telemetry:
        settings = self._hub.settings
        if len(payload) > settings.max_body_bytes:
            raise PayloadTooLarge(
                f"payload is {len(payload)} bytes; the limit is {settings.max_body_bytes}",
                [FieldError(detail="payload too large", pointer="#")],
            )
        if target.kind is TopicKind.STATE:
            return parse_state_json(
                target.device_id,
                payload,
                received_at=received_at,
                max_batch_readings=settings.max_batch_readings,
            )
        return parse_telemetry_json(
            target.device_id,
            payload,
            received_at=received_at,
            max_batch_readings=settings.max_batch_readings,
            max_future_skew=settings.max_future_skew_seconds,
        )

    async def _submit(self, telemetry: Telemetry) -> None:
        storage_delay = 0.1
        while True:
            try:
                await self._hub.ingestor.submit(telemetry)
                return
            except NotFound:
                raise _unknown(telemetry.device_id) from None
            except ShuttingDown:
                raise
            except Overloaded as exc:
                # Holding the acknowledgement is the backpressure: the broker
                # stops sending once the in-flight window is full.
                await asyncio.sleep(min(exc.retry_after, 1.0))
            except StorageUnavailable:
                log.warning("database unavailable; MQTT message kept unacknowledged, retrying")
                await asyncio.sleep(storage_delay)
                storage_delay = min(storage_delay * 2, _STORAGE_RETRY_MAX)


def _unknown(device_id: str) -> UnknownDevice:
    return UnknownDevice(
        f"device {device_id!r} does not exist",
        [FieldError(detail="no such device", parameter="topic")],
    )
