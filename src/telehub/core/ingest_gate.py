"""The one way telemetry enters telehub, whatever carried it.

MQTT, HTTP and gRPC each call this gate and nothing else of the ingest path:
it authenticates the sender for the device, decodes or validates the body,
records what it refuses in the rejected-inputs log (counted, with an excerpt),
hands the rest to the :class:`~telehub.core.ingest.Ingestor`, and turns "the
device does not exist", which only the writer can tell, into a recorded
rejection. So a reading is judged by the same rules and leaves the same trace
on every transport; what differs is only how each answers its sender (HTTP
problem+json, an MQTT acknowledgement held or given, a gRPC status), and that
stays in the adapter.

What a rejection record quotes is passed as ``payload``: the raw bytes, or a
function that renders them (a gRPC batch as text), called only when a record
is made.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from telehub.core.auth import Authenticator
from telehub.core.ingest import Ingestor, IngestResult, Ticket
from telehub.core.ports import KnownMetrics
from telehub.core.rejected import RejectedLog
from telehub.domain.devices import Principal
from telehub.domain.readings import Telemetry, now_us
from telehub.domain.state_keys import metric_state_refusal, state_keys
from telehub.domain.telemetry import parse_state_json, parse_telemetry_json
from telehub.domain.typed_batch import Limits
from telehub.errors import (
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TelehubError,
    UnknownDevice,
)

Payload = bytes | Callable[[], bytes]


class BodyKind(enum.Enum):
    """What a JSON body holds: readings (numbers; anything else is state) or only state."""

    TELEMETRY = "telemetry"
    STATE = "state"


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """What any one submission may hold, on every transport."""

    max_body_bytes: int
    max_batch_readings: int
    max_future_skew: float


@dataclass(frozen=True, slots=True)
class Submission:
    """Decoded telemetry and what to quote of it if the writer refuses it."""

    telemetry: Telemetry
    payload: Payload


class IngestGate:
    def __init__(
        self,
        *,
        auth: Authenticator,
        ingestor: Ingestor,
        rejected: RejectedLog,
        limits: IngestLimits,
        known_metrics: KnownMetrics,
    ) -> None:
        """``known_metrics`` tells which state keys of a submission are metrics of its
        device (storage knows): a value for one that is not a number is refused."""
        self._auth = auth
        self._ingestor = ingestor
        self._rejected = rejected
        self._known_metrics = known_metrics
        self.limits = limits

    async def sender(self, secret: str | None) -> Principal:
        """Who presents ``secret``; Unauthenticated if nobody."""
        return await self._auth.authenticate(secret)

    @staticmethod
    def authorize(principal: Principal, device_id: str) -> None:
        """Forbidden unless ``principal`` may write telemetry for ``device_id``.

        Checked before the body is judged: a sender that may not write there
        leaves no rejection record under another device's name.
        """
        if not principal.can_write_device(device_id):
            raise Forbidden(f"this token may not write telemetry for device {device_id!r}")

    async def decode(
        self, *, transport: str, device_id: str, payload: bytes, kind: BodyKind
    ) -> Telemetry:
        """A JSON body as validated telemetry; InvalidInput (recorded) if it is not one."""
        limits = self.limits
        try:
            if len(payload) > limits.max_body_bytes:
                raise _too_large(len(payload), limits.max_body_bytes)
            received_at = datetime.now(UTC)
            if kind is BodyKind.STATE:
                telemetry = parse_state_json(
                    device_id,
                    payload,
                    received_at=received_at,
                    max_batch_readings=limits.max_batch_readings,
                )
            else:
                telemetry = parse_telemetry_json(
                    device_id,
                    payload,
                    received_at=received_at,
                    max_batch_readings=limits.max_batch_readings,
                    max_future_skew=limits.max_future_skew,
                )
            if telemetry.state:  # the rare case: most bodies are numbers only
                await self._refuse_state_for_metrics(telemetry)
            return telemetry
        except InvalidInput as exc:
            await self.reject(transport=transport, device_id=device_id, error=exc, payload=payload)
            raise

    async def decode_typed(
        self,
        *,
        transport: str,
        device_id: str | None,
        build: Callable[[Limits], Telemetry],
        payload: Payload,
    ) -> Telemetry:
        """Telemetry from typed fields (a protobuf batch): ``build`` applies the domain's
        checks under this gate's limits; InvalidInput (recorded) if they fail."""
        limits = Limits(
            received_us=now_us(),
            max_future_skew=self.limits.max_future_skew,
            max_values=self.limits.max_batch_readings,
        )
        try:
            telemetry = build(limits)
            if telemetry.state:
                await self._refuse_state_for_metrics(telemetry)
            return telemetry
        except InvalidInput as exc:
            await self.reject(transport=transport, device_id=device_id, error=exc, payload=payload)
            raise

    async def _refuse_state_for_metrics(self, telemetry: Telemetry) -> None:
        """InvalidInput if a state value's key is a metric of the device: it has readings
        of it, or this submission gives it a number."""
        metrics = await self._known_metrics.metrics_among(
            telemetry.device_id, state_keys(telemetry)
        )
        refusal = metric_state_refusal(telemetry, metrics)
        if refusal is not None:
            raise refusal

    async def refuse_too_large(self, *, transport: str, device_id: str, head: bytes) -> NoReturn:
        """A body over the limit that was not read whole: record its ``head`` and refuse it."""
        error = _too_large(None, self.limits.max_body_bytes)
        await self.reject(transport=transport, device_id=device_id, error=error, payload=head)
        raise error

    async def submit(
        self, principal: Principal, telemetry: Telemetry, *, transport: str, payload: Payload
    ) -> IngestResult:
        """Store ``telemetry``; returns once it is committed.

        Raises NotFound (recorded as an unknown device's input) when the
        device does not exist, and whatever the Ingestor raises (Overloaded,
        ShuttingDown, StorageUnavailable) with nothing acknowledged.
        """
        self.authorize(principal, telemetry.device_id)
        [answer] = await self.submit_many([Submission(telemetry, payload)], transport=transport)
        if isinstance(answer, UnknownDevice):
            raise NotFound(str(answer)) from None
        if isinstance(answer, TelehubError):
            raise answer
        return answer

    async def submit_many(
        self, items: Sequence[Submission], *, transport: str
    ) -> list[IngestResult | TelehubError]:
        """Store telemetry the transport has already authorized (an MQTT broker checked the
        topic); each item answered on its own. An unknown device's item is recorded and
        answered UnknownDevice; anything else refused was not accepted and may be resent."""
        answers = await self._ingestor.submit_many([s.telemetry for s in items])
        for index, (item, answer) in enumerate(zip(items, answers, strict=True)):
            if isinstance(answer, NotFound):
                answers[index] = await self.unknown_device(
                    transport=transport, device_id=item.telemetry.device_id, payload=item.payload
                )
        return answers

    def offer(self, principal: Principal, telemetry: Telemetry) -> Ticket:
        """Queue ``telemetry`` without waiting for its commit (a stream keeps several in
        flight). An answer NotFound is for :meth:`unknown_device` to record."""
        self.authorize(principal, telemetry.device_id)
        return self._ingestor.offer([telemetry])

    async def unknown_device(
        self, *, transport: str, device_id: str, payload: Payload
    ) -> UnknownDevice:
        """Record input for a device that does not exist; the error to answer with."""
        error = UnknownDevice(
            f"device {device_id!r} does not exist",
            [FieldError(detail="no such device", parameter="device_id")],
        )
        await self.reject(transport=transport, device_id=device_id, error=error, payload=payload)
        return error

    async def reject(
        self, *, transport: str, device_id: str | None, error: InvalidInput, payload: Payload
    ) -> None:
        """Count and keep refused input, for refusals only a transport can tell (a topic
        outside the device's own, a broken packet, a retained replay)."""
        raw = payload if isinstance(payload, bytes) else payload()
        await self._rejected.record(
            transport=transport, device_id=device_id, error=error, payload=raw
        )


def _too_large(size: int | None, limit: int) -> PayloadTooLarge:
    detail = (
        f"payload is {size} bytes; the limit is {limit} bytes"
        if size is not None
        else f"payload is over the limit of {limit} bytes"
    )
    return PayloadTooLarge(
        detail,
        [FieldError(detail="payload too large", pointer="#")],
    )
