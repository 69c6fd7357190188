"""``GET /api/v1/events``: one-way feeds over Server-Sent Events, resumable.

Every event comes from the durable log with its log id as the SSE ``id``. A
client that reconnects with ``Last-Event-ID`` (browsers send it by themselves)
first gets what it missed, read from the log, then the live feed; an event is
never sent twice or out of order, on any process. If the log no longer holds
everything after that id, a ``gap`` event says how many were trimmed (its id
is where the client now stands).

A stream ends when the credential it was opened with is revoked (the token
deleted, a ticket's token included); resuming with it is then refused (401).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from telehub.api.deps import LiveReadScope
from telehub.bus.feed import EventFeed
from telehub.bus.subscription import SubscriptionClosed
from telehub.core.events import EventLog
from telehub.core.metrics import Metrics
from telehub.core.sessions import SessionRegistry
from telehub.domain.devices import Principal
from telehub.domain.live import BusMessage, Event, EventType, LoggedEvents
from telehub.errors import FieldError, InvalidInput

router = APIRouter(tags=["live"])

_CATCH_UP_PAGE = 1000


def _parse_types(raw: str | None) -> frozenset[EventType]:
    if not raw:
        return frozenset(EventType)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in EventType._value2member_map_]
    if unknown or not names:
        raise InvalidInput(
            f"unknown event type(s): {', '.join(unknown) or raw!r}",
            [FieldError(detail=f"one or more of {', '.join(EventType)}", parameter="types")],
        )
    return frozenset(EventType(n) for n in names)


def _parse_cursor(header: str | None, query: int | None) -> int | None:
    # The header wins: an EventSource reconnects to its first URL (with its old
    # ``after``) and sends the id of the last event it got as Last-Event-ID.
    if header is None or not header.strip():
        return query
    try:
        value = int(header)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput(
            "Last-Event-ID is not an event id of this feed",
            [FieldError(detail="a non-negative integer", parameter="Last-Event-ID")],
        )
    return value


def encode(event: Event) -> bytes:
    """One event in text/event-stream form, made once and shared by every client."""
    cached = event.wire.get("sse")
    if cached is None:
        cached = b"id: %d\nevent: %s\ndata: %s\n\n" % (
            event.id,
            event.type.value.encode(),
            orjson.dumps(event.data),
        )
        event.wire["sse"] = cached
    return cached


@router.get(
    "/api/v1/events",
    summary="Live feed of events (Server-Sent Events), resumable with Last-Event-ID",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    principal: LiveReadScope,
    types: Annotated[
        str | None,
        Query(description="comma-separated: alerts, commands, jobs, presence (default: all)"),
    ] = None,
    devices: Annotated[
        str | None, Query(description="comma-separated device ids (default: all)")
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, description="resume after this event id (a Last-Event-ID header wins)"),
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    ports: StreamPorts = request.app.state.event_stream
    wanted = _parse_types(types)
    device_ids = frozenset(d.strip() for d in (devices or "").split(",") if d.strip()) or None
    cursor = _parse_cursor(last_event_id, after)
    stream = _Stream(ports, principal=principal, types=wanted, devices=device_ids)
    return StreamingResponse(
        stream.run(cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@dataclass(frozen=True, slots=True)
class StreamPorts:
    """What an event stream uses (api/app.py fills it from the hub)."""

    events: EventLog
    feed: EventFeed
    sessions: SessionRegistry
    metrics: Metrics
    keepalive_seconds: float
    retry_ms: int


class _Stream:
    def __init__(
        self,
        ports: StreamPorts,
        *,
        principal: Principal,
        types: frozenset[EventType],
        devices: frozenset[str] | None,
    ) -> None:
        self._log = ports.events
        self._feed = ports.feed
        self._sessions = ports.sessions
        self._principal = principal
        self._types = types
        self._devices = devices
        self._keepalive = ports.keepalive_seconds
        self._retry = ports.retry_ms
        self._sent = ports.metrics.sse_events
        self._connections = ports.metrics.sse_connections
        self._cursor = 0

    def _wants(self, event: Event) -> bool:
        return event.type in self._types and (
            self._devices is None or event.device_id in self._devices
        )

    async def run(self, cursor: int | None) -> AsyncIterator[bytes]:
        self._connections.inc()
        try:
            await self._feed.started()
            # Subscribe before reading the log: what is logged meanwhile is in one or both.
            async with (
                self._feed.subscribe() as live,
                # A revocation closes ``live``, which ends the stream.
                self._sessions.register(
                    self._principal, transport="sse", on_revoke=lambda _: live.close()
                ) as session,
            ):
                # Read with the subscription, no await between: every event past this
                # id reaches ``live``, and none before it does.
                start = self._feed.cursor
                yield b"retry: %d\n\n" % self._retry
                if cursor is None:
                    self._cursor = start
                else:
                    gap, self._cursor = await self._check(cursor)
                    if gap:
                        yield gap
                    async for chunk in self._catch_up():
                        if session.revoked:
                            return
                        yield chunk
                while True:
                    try:
                        async with asyncio.timeout(self._keepalive):
                            delivery = await live.next()
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    except SubscriptionClosed:
                        # Revoked, or the server is shutting down (the client resumes
                        # elsewhere): either way the stream ends here.
                        return
                    if delivery.lost:
                        # The feed dropped some for this client: the log has them, unless
                        # it was trimmed past this client meanwhile (then say so).
                        gap, self._cursor = await self._check(self._cursor)
                        if gap:
                            yield gap
                        async for chunk in self._catch_up():
                            if session.revoked:
                                return
                            yield chunk
                    chunk = self._fresh(delivery.messages)
                    if chunk and not session.revoked:
                        yield chunk
        finally:
            self._connections.dec()

    def _fresh(self, messages: list[BusMessage]) -> bytes:
        out = []
        for message in messages:
            assert isinstance(message, LoggedEvents)
            for event in message.events:
                if event.id > self._cursor:
                    self._cursor = event.id
                    if self._wants(event):
                        out.append(encode(event))
        self._sent.inc(len(out))
        return b"".join(out)

    async def _catch_up(self) -> AsyncIterator[bytes]:
        """Everything in the log after the cursor, page by page, advancing the cursor."""
        while True:
            page = await self._log.after(
                self._cursor, types=self._types, device_ids=self._devices, limit=_CATCH_UP_PAGE
            )
            if page:
                self._cursor = page[-1].id
                self._sent.inc(len(page))
                yield b"".join(encode(e) for e in page)
            if len(page) < _CATCH_UP_PAGE:
                return

    async def _check(self, cursor: int) -> tuple[bytes | None, int]:
        """A gap event if the log cannot give everything after ``cursor``, and where to start.

        An id beyond the newest comes from another log (a reset database): resuming
        from it would hide every event until the log caught up, so start at its end.
        """
        bounds = await self._log.bounds()
        oldest, newest = bounds if bounds is not None else (0, 0)
        if cursor > newest:
            data = orjson.dumps({"missed": None, "reason": "unknown-last-event-id"})
            return _gap(newest, data), newest
        if bounds is None or cursor + 1 >= oldest:
            return None, cursor
        data = orjson.dumps({"missed": oldest - cursor - 1, "reason": "trimmed"})
        return _gap(oldest - 1, data), oldest - 1


def _gap(resume_id: int, data: bytes) -> bytes:
    """A gap carries the id to resume from, so a reconnect does not report it twice."""
    return b"id: %d\nevent: gap\ndata: %s\n\n" % (resume_id, data)
