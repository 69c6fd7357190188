"""``GET /api/v1/ws``: the live two-way stream of a dashboard.

Each connection has one bus subscription with a bounded backlog and one pump
task that turns what arrived into frames: readings coalesced into one frame
per subscription per ``ws_frame_interval_seconds``, presence and command
status as they come, and a ``gap`` when the backlog overflowed. The receive
loop answers the client's operations; a bad one gets an ``error`` reply and
the socket stays open. Close codes: 1008 (authentication or scope), 1013
(this process has as many connections as it takes).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from telehub.api import live_frames as frames
from telehub.api import ws_messages as ops
from telehub.api.command_schemas import CommandOut
from telehub.api.problems import slug_of
from telehub.bus import Channel, Delivery, Subscription
from telehub.core.auth import require
from telehub.domain.devices import Principal, Scope
from telehub.domain.live import EventType, LiveReadings, LoggedEvents
from telehub.errors import AuthError, FieldError, InvalidInput, TelehubError
from telehub.runtime import Hub

log = logging.getLogger(__name__)
router = APIRouter()

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


@router.websocket("/api/v1/ws")
async def live(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    clients: Clients = websocket.app.state.ws_clients
    if clients.count >= hub.settings.ws_max_connections:
        await websocket.close(TRY_AGAIN_LATER, "too many connections; retry later")
        return
    try:
        principal = await hub.auth.authenticate(_token(websocket))
        require(principal, Scope.READ)
    except AuthError as exc:
        await websocket.close(POLICY_VIOLATION, str(exc)[:120])
        return
    clients.count += 1
    hub.metrics.ws_connections.inc()
    try:
        await LiveSession(websocket, hub, principal).run()
    finally:
        clients.count -= 1
        hub.metrics.ws_connections.dec()


class Clients:
    """This app's WebSocket connections (a counter on app.state, one per app)."""

    count = 0


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return websocket.query_params.get("token")


class LiveSession:
    def __init__(self, websocket: WebSocket, hub: Hub, principal: Principal) -> None:
        self._ws = websocket
        self._hub = hub
        self._principal = principal
        self._filters: dict[str | int, frames.Filter] = {}
        self._watched: dict[str, str | int | None] = {}  # command id → request id
        self._subscription: Subscription | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        """Until the client goes; the pump runs beside the receive loop in one task group."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await self._receive()
                if self._pump_task is not None:
                    self._pump_task.cancel()
        except* WebSocketDisconnect:
            pass  # the pump found the client gone
        finally:
            if self._subscription is not None:
                self._subscription.close()

    async def _receive(self) -> None:
        while True:
            try:
                message = await self._ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            await self._handle(raw)

    async def _handle(self, raw: str | bytes) -> None:
        try:
            op = ops.parse(raw)
            match op:
                case ops.Subscribe():
                    await self._subscribe(op)
                case ops.Unsubscribe():
                    await self._unsubscribe(op)
                case ops.SendCommand():
                    await self._command(op)
                case ops.Ping():
                    await self._send(frames.reply("pong", op.id))
        except TelehubError as exc:
            await self._send(_error(ops.request_id(raw), exc))

    async def _subscribe(self, op: ops.Subscribe) -> None:
        if op.id not in self._filters and len(self._filters) >= ops.MAX_SUBSCRIPTIONS:
            raise InvalidInput(
                f"at most {ops.MAX_SUBSCRIPTIONS} subscriptions per connection",
                [FieldError(detail="unsubscribe another first", pointer="#/id")],
            )
        devices = None if "*" in op.devices else frozenset(op.devices)
        metrics = None if op.metrics is None else frozenset(op.metrics)
        self._filters[op.id] = frames.Filter(devices, metrics)
        self._start_pump()
        await self._send(frames.reply("subscribed", op.id))

    async def _unsubscribe(self, op: ops.Unsubscribe) -> None:
        if self._filters.pop(op.id, None) is None:
            raise InvalidInput(
                f"no subscription {op.id!r}", [FieldError(detail="unknown id", pointer="#/id")]
            )
        await self._send(frames.reply("unsubscribed", op.id))

    async def _command(self, op: ops.SendCommand) -> None:
        require(self._principal, Scope.WRITE)
        self._start_pump()  # before sending, so no status change can slip past
        # Holding the send lock keeps the pump's first status push behind this reply.
        async with self._send_lock:
            command = await self._hub.commands.send(
                op.device_id, name=op.name, params=op.params, ttl_s=op.ttl_s
            )
            self._watched[command.id] = op.id
            body = CommandOut.of(command).model_dump(mode="json")
            await self._send_unlocked(frames.reply("command", op.id, command=body))

    def _start_pump(self) -> None:
        if self._subscription is None:
            assert self._tasks is not None
            self._subscription = self._hub.bus.subscribe([Channel.READINGS, Channel.EVENTS])
            self._pump_task = self._tasks.create_task(
                self._pump(self._subscription), name="ws-pump"
            )

    async def _pump(self, subscription: Subscription) -> None:
        interval = self._hub.settings.ws_frame_interval_seconds
        frames_sent = self._hub.metrics.ws_frames
        last = 0.0
        while True:
            await subscription.wait()
            # Coalesce: what arrives within the interval after the previous frame goes
            # out together in the next one.
            pause = last + interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            delivery = subscription.take()
            if delivery is None:
                continue
            last = time.monotonic()
            for kind, frame in self._frames(delivery):
                await self._send(frame)
                frames_sent.labels(kind).inc()

    def _frames(self, delivery: Delivery) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if delivery.dropped:
            out.append(("gap", frames.gap_frame(delivery.dropped, reason="slow-consumer")))
        if delivery.interrupted:
            out.append(("gap", frames.gap_frame(None, reason="bus-interrupted")))
        readings = [m for m in delivery.messages if isinstance(m, LiveReadings)]
        if readings:
            for sub_id, want in self._filters.items():
                parts = frames.readings_parts(readings, want)
                if parts:
                    out.append(("readings", frames.readings_frame(sub_id, parts)))
        for message in delivery.messages:
            if isinstance(message, LoggedEvents):
                out.extend(self._event_frames(message))
        return out

    def _event_frames(self, message: LoggedEvents) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for event in message.events:
            if event.type is EventType.PRESENCE:
                out.extend(
                    ("presence", frames.presence_frame(sub_id, event))
                    for sub_id, want in self._filters.items()
                    if want.wants_device(event.device_id)
                )
            elif event.type is EventType.COMMANDS:
                command_id = event.data["command_id"]
                if command_id in self._watched:
                    request_id = self._watched[command_id]
                    out.append(("command_status", frames.command_frame(request_id, event)))
                    if event.data["status"] not in ("pending", "sent"):
                        del self._watched[command_id]
                else:
                    out.extend(
                        ("command_status", frames.command_frame(sub_id, event))
                        for sub_id, want in self._filters.items()
                        if want.wants_device(event.device_id)
                    )
        return out

    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            await self._send_unlocked(frame)

    async def _send_unlocked(self, frame: bytes) -> None:
        await self._ws.send({"type": "websocket.send", "text": frame.decode()})


def _error(request_id: str | int | None, exc: TelehubError) -> bytes:
    errors = exc.errors if isinstance(exc, InvalidInput) else []
    detail = exc.detail if isinstance(exc, InvalidInput) else str(exc)
    return frames.reply(
        "error",
        request_id,
        code=slug_of(exc),
        detail=detail,
        errors=[
            {k: v for k, v in (("detail", e.detail), ("pointer", e.pointer)) if v is not None}
            for e in errors
        ],
    )
