"""IngestService: batches in, a summary out once every counted batch is committed.

``Publish`` keeps up to ``grpc_stream_window_readings`` readings in flight to
the batch writer, so one stream keeps the pipeline busy without a round trip
per batch, and fills whole commits (the writer stops waiting for company once
a commit's worth is queued).
A bad batch is rejected, recorded and counted, and the stream goes on. When
ingest pushes back (or the caller may not write a batch's device) the stream
first waits for its batches in flight, then ends with a status whose details
hold the summary of what was committed: the client resends from there. Every
status that ends a stream early carries that summary, whatever the cause (a
bad token, a message that is not a ReadingBatch, a bug: INTERNAL), trimmed to
fit the trailers clients accept. A stream is a live session of its caller's
credential: revoked, it ends UNAUTHENTICATED, with that summary too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from google.protobuf import text_format

from telehub.core.ingest import IngestResult, Ticket
from telehub.core.ingest_gate import IngestGate
from telehub.core.sessions import SessionRegistry
from telehub.domain.devices import Principal
from telehub.domain.live import Revoked
from telehub.domain.readings import Telemetry
from telehub.errors import (
    InvalidInput,
    NotFound,
    TelehubError,
    Unauthenticated,
)
from telehub.grpc import convert
from telehub.grpc.auth import Context, bearer
from telehub.grpc.status import abort, field_path, to_status
from telehub.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger(__name__)

MAX_REJECTIONS = 100
# The summary of an error status rides in the trailers, which clients cap
# (grpc: 8 KiB by default, or the whole status is lost): this leaves room.
ENDING_SUMMARY_BYTES = 4096
ENDING_VIOLATIONS = 3
_EXCERPT_READINGS = 20
TRANSPORT = "grpc"


class Tally:
    """The running PublishSummary of one call."""

    def __init__(self) -> None:
        self.summary = telemetry_pb2.PublishSummary()

    def add(self, result: IngestResult) -> None:
        self.summary.batches += 1
        self.summary.accepted += result.accepted
        self.summary.duplicates += result.duplicates
        self.summary.state += result.state

    def ending(self) -> telemetry_pb2.PublishSummary:
        """The summary for an error status: every count, and the first rejections that fit
        in ENDING_SUMMARY_BYTES, each with its first ENDING_VIOLATIONS field violations."""
        if self.summary.ByteSize() <= ENDING_SUMMARY_BYTES:
            return self.summary
        out = telemetry_pb2.PublishSummary()
        out.CopyFrom(self.summary)
        del out.rejections[:]
        for rejection in self.summary.rejections:
            kept = out.rejections.add()
            kept.CopyFrom(rejection)
            del kept.field_violations[ENDING_VIOLATIONS:]
            if out.ByteSize() > ENDING_SUMMARY_BYTES:
                del out.rejections[-1]
                break
        return out

    def reject(self, index: int, batch: telemetry_pb2.ReadingBatch, exc: InvalidInput) -> None:
        s = self.summary
        s.batches += 1
        s.rejected_batches += 1
        s.rejected += (
            len(batch.readings) + len(batch.state) + sum(len(x.values) for x in batch.series)
        )
        if len(s.rejections) < MAX_REJECTIONS:
            s.rejections.append(
                telemetry_pb2.BatchRejection(
                    index=index,
                    device_id=batch.device_id,
                    reason=exc.reason,
                    detail=exc.detail,
                    field_violations=[
                        telemetry_pb2.FieldViolation(field=field_path(e), description=e.detail)
                        for e in exc.errors
                    ],
                )
            )


class _Window:
    """The batches of one stream handed to the writer and not yet answered, oldest first."""

    def __init__(self) -> None:
        self.batches: deque[tuple[int, telemetry_pb2.ReadingBatch, Ticket, int]] = deque()
        self.readings = 0

    def add(
        self, index: int, batch: telemetry_pb2.ReadingBatch, ticket: Ticket, weight: int
    ) -> None:
        self.batches.append((index, batch, ticket, max(1, weight)))
        self.readings += max(1, weight)

    def clear(self) -> None:
        self.batches.clear()
        self.readings = 0


class _Revocable:
    """The client stream of one Publish call, ended when its caller's credential is revoked.

    A revocation cancels the call's task only while it waits for the client's
    next batch (it may wait for hours); anywhere else (waiting for a commit,
    whose answer the summary needs) the stream ends before its next read.
    """

    def __init__(self) -> None:
        self._task = asyncio.current_task()
        self._reading = False
        self._cancelled = False
        self.revoked = False

    def revoke(self, _: Revoked) -> None:
        self.revoked = True
        if self._reading and self._task is not None:
            self._cancelled = self._task.cancel()

    async def batches(
        self, requests: AsyncIterator[telemetry_pb2.ReadingBatch]
    ) -> AsyncGenerator[telemetry_pb2.ReadingBatch, None]:
        while not self.revoked:
            self._reading = True
            try:
                batch = await anext(requests)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Ours, unless the call was cancelled too (the client hung up).
                if self._cancelled and self._task is not None and self._task.uncancel() == 0:
                    break
                raise
            finally:
                self._reading = False
            yield batch
        raise Unauthenticated("the credential of this stream was revoked")


class IngestServicer(telemetry_pb2_grpc.IngestServiceServicer):
    def __init__(
        self, *, gate: IngestGate, sessions: SessionRegistry, stream_window_readings: int
    ) -> None:
        self._gate = gate
        self._sessions = sessions
        self._window = stream_window_readings

    async def PublishBatch(
        self, request: telemetry_pb2.ReadingBatch, context: Context
    ) -> telemetry_pb2.PublishSummary:
        principal = await self._gate.sender(bearer(context))
        telemetry = await self._decode(principal, request)
        tally = Tally()
        tally.add(
            await self._gate.submit(
                principal, telemetry, transport=TRANSPORT, payload=_excerpt(request)
            )
        )
        return tally.summary

    async def Publish(
        self, request_iterator: AsyncIterator[telemetry_pb2.ReadingBatch], context: Context
    ) -> telemetry_pb2.PublishSummary:
        tally = Tally()
        window = _Window()
        try:
            principal = await self._gate.sender(bearer(context))
            stream = _Revocable()
            with self._sessions.register(principal, transport="grpc", on_revoke=stream.revoke):
                async with contextlib.aclosing(stream.batches(request_iterator)) as batches:
                    await self._take(principal, batches, window, tally)
            return tally.summary
        except TelehubError as exc:
            ending = exc
        except Exception as exc:  # a bug; the client still learns what was committed
            log.error("gRPC Publish failed", exc_info=exc)
            ending = TelehubError("internal error")
        # What was counted is committed; tell the client where to resume.
        await self._settle(window, tally, keep=0, stop=False)
        await abort(context, to_status(ending, tally.ending()))
        return tally.summary  # not reached: abort raises

    async def _take(
        self,
        principal: Principal,
        request_iterator: AsyncIterator[telemetry_pb2.ReadingBatch],
        window: _Window,
        tally: Tally,
    ) -> None:
        """Offer each batch, counting the answers as they come, until the stream ends."""
        limit = self._window
        index = 0
        async for batch in request_iterator:
            try:
                telemetry = await self._decode(principal, batch)
                ticket = self._gate.offer(principal, telemetry)
            except InvalidInput as exc:
                await self._settle(window, tally, keep=0)
                tally.reject(index, batch, exc)
                index += 1
                continue
            window.add(index, batch, ticket, len(telemetry.readings) + len(telemetry.state))
            index += 1
            if ticket.remaining == 0:  # refused at once: push-back or shutdown
                break
            await self._settle(window, tally, keep=limit)
        await self._settle(window, tally, keep=0)

    async def _settle(self, window: _Window, tally: Tally, *, keep: int, stop: bool = True) -> None:
        """Wait for the oldest batches in flight, in order, until at most ``keep`` readings
        are (the newest batch may hold more on its own).

        A batch whose device does not exist is a rejection; any other failure
        ends the stream (raised, unless ``stop`` is False: already ending).
        """
        while window.readings > keep and (keep == 0 or len(window.batches) > 1):
            index, batch, ticket, weight = window.batches.popleft()
            window.readings -= weight
            [answer] = await ticket.answers()
            if isinstance(answer, IngestResult):
                tally.add(answer)
            elif isinstance(answer, NotFound):
                unknown = await self._gate.unknown_device(
                    transport=TRANSPORT, device_id=batch.device_id, payload=_excerpt(batch)
                )
                tally.reject(index, batch, unknown)
            elif stop:
                window.clear()  # the rest waits in vain: it comes after the failure
                raise answer
            else:
                window.clear()

    async def _decode(self, principal: Principal, batch: telemetry_pb2.ReadingBatch) -> Telemetry:
        if batch.device_id:
            self._gate.authorize(principal, batch.device_id)
        return await self._gate.decode_typed(
            transport=TRANSPORT,
            device_id=batch.device_id or None,
            build=lambda limits: convert.telemetry_of(batch, limits=limits),
            payload=_excerpt(batch),
        )


def _excerpt(batch: telemetry_pb2.ReadingBatch) -> Callable[[], bytes]:
    """What a rejection record keeps of a batch: its first readings, as text (it can show
    the NaN that got the batch refused, which JSON cannot)."""

    def render() -> bytes:
        excerpt = telemetry_pb2.ReadingBatch(device_id=batch.device_id)
        excerpt.readings.extend(batch.readings[:_EXCERPT_READINGS])
        excerpt.state.extend(batch.state[:_EXCERPT_READINGS])
        for series in batch.series[:_EXCERPT_READINGS]:
            excerpt.series.add(
                metric=series.metric,
                values=series.values[:_EXCERPT_READINGS],
                timestamps_us=series.timestamps_us[:_EXCERPT_READINGS],
            )
        return text_format.MessageToString(excerpt, as_one_line=True).encode()

    return render
