"""LiveService: the bus as a server stream, under the same backlog and gap rule as WebSocket.

A subscriber that reads slower than the hub commits falls behind by at most
its backlog; older messages are dropped for it alone and a ``Gap`` says how
many, so a slow service never slows ingest or anyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from telehub.bus import Channel, Delivery
from telehub.core.auth import Authenticator
from telehub.domain.devices import Scope
from telehub.domain.live import EventType, Filter, LiveReadings, LoggedEvents
from telehub.domain.readings import (
    DEVICE_ID_PATTERN,
    METRIC_NAME_PATTERN,
    is_device_id,
    is_metric_name,
)
from telehub.errors import FieldError, InvalidInput
from telehub.grpc import convert
from telehub.grpc.auth import Context, caller
from telehub.grpc.streams import LiveStreams
from telehub.v1 import live_pb2, live_pb2_grpc

MAX_FILTER_ITEMS = 1000


class LiveServicer(live_pb2_grpc.LiveServiceServicer):
    def __init__(self, *, auth: Authenticator, streams: LiveStreams) -> None:
        self._auth = auth
        self._streams = streams

    async def Subscribe(
        self, request: live_pb2.SubscribeRequest, context: Context
    ) -> AsyncIterator[live_pb2.LiveEvent]:
        principal = await caller(self._auth, context, Scope.READ)
        want = _filter(request)
        channels = [] if request.no_readings else [Channel.READINGS]
        if request.presence or request.commands:
            channels.append(Channel.EVENTS)
        if not channels:
            raise InvalidInput(
                "nothing to subscribe to",
                [
                    FieldError(
                        detail="no_readings leaves presence or commands", parameter="no_readings"
                    )
                ],
            )
        async with self._streams.subscribe(channels, principal) as subscription:
            async for delivery in subscription:
                for event in _events(delivery, want, request):
                    yield event
        self._streams.check()


def _filter(request: live_pb2.SubscribeRequest) -> Filter:
    errors = [
        FieldError(detail=f"must match {DEVICE_ID_PATTERN}", parameter=f"device_ids[{i}]")
        for i, d in enumerate(request.device_ids)
        if not is_device_id(d)
    ] + [
        FieldError(detail=f"must match {METRIC_NAME_PATTERN}", parameter=f"metrics[{i}]")
        for i, m in enumerate(request.metrics)
        if not is_metric_name(m)
    ]
    for name in ("device_ids", "metrics"):
        if len(getattr(request, name)) > MAX_FILTER_ITEMS:
            errors.append(FieldError(detail=f"at most {MAX_FILTER_ITEMS}", parameter=name))
    if errors:
        raise InvalidInput("the subscription is invalid", errors)
    return Filter(
        devices=frozenset(request.device_ids) or None, metrics=frozenset(request.metrics) or None
    )


def _events(
    delivery: Delivery, want: Filter, request: live_pb2.SubscribeRequest
) -> list[live_pb2.LiveEvent]:
    out: list[live_pb2.LiveEvent] = []
    if delivery.dropped:
        out.append(
            live_pb2.LiveEvent(gap=live_pb2.Gap(dropped=delivery.dropped, reason="slow-consumer"))
        )
    if delivery.interrupted:
        out.append(live_pb2.LiveEvent(gap=live_pb2.Gap(reason="bus-interrupted")))
    for message in delivery.messages:
        if isinstance(message, LiveReadings):
            at = convert.timestamp(message.committed_us)
            for item in message.items:
                if not item.readings or not want.wants_device(item.device_id):
                    continue
                batch = convert.batch_of(item, want.metrics)
                if batch.readings:
                    out.append(live_pb2.LiveEvent(readings=batch, at=at))
        elif isinstance(message, LoggedEvents):
            for event in message.events:
                if not want.wants_device(event.device_id):
                    continue
                if event.type is EventType.PRESENCE and request.presence:
                    out.append(convert.presence_event(event))
                elif event.type is EventType.COMMANDS and request.commands:
                    out.append(convert.command_event(event))
    return out
