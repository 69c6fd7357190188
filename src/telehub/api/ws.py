"""``GET /api/v1/ws``: the live two-way stream of a dashboard.

Served as plain ASGI ahead of FastAPI's routing (api/front.py):
thousands of dashboards sit idle on this socket, and the framework's
per-connection objects would cost more than everything telehub keeps. An idle
connection holds its session and its bus subscription, and no task of its own:
a flusher task starts when something arrives and ends when the backlog is
empty. It coalesces readings into one frame per subscription per
``ws_frame_interval_seconds``, sends device state, presence and command status
as they come, and a ``gap`` when the backlog overflowed. The receive loop answers the
client's operations; a bad one gets an ``error`` reply and the socket stays
open. Close codes: 1008 (authentication or scope, or the credential was
revoked while the socket was open: reason ``credential revoked``), 1013 (this
process has as many connections as it takes).

Credentials, in this order: an ``Authorization: Bearer`` header; a
``bearer.<token>`` entry among the offered subprotocols, beside ``telehub.v1``
(for browsers, which cannot set headers on a WebSocket; the server answers
``telehub.v1`` only, never the entry with the token); ``?ticket=``, a
single-use ticket from ``POST /api/v1/live/tickets``; ``?token=``, still
accepted, discouraged (uvicorn's lines show it redacted, but proxies may not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from telehub.api import live_frames as frames
from telehub.api import ws_messages as ops
from telehub.api.auth_gate import bearer_token
from telehub.api.command_schemas import CommandOut
from telehub.api.problems import slug_of
from telehub.api.ws_protocol import KEEPALIVE_TIMEOUT, PeerDropped
from telehub.bus import Bus, Channel, Delivery, Subscription
from telehub.core.auth import Authenticator, require
from telehub.core.commands import CommandService
from telehub.core.metrics import Metrics
from telehub.core.sessions import SessionRegistry
from telehub.core.tickets import LiveTickets
from telehub.domain.commands import CommandStatus
from telehub.domain.devices import Principal
from telehub.domain.devices import Scope as TokenScope
from telehub.domain.live import EventType, Filter, LiveReadings, LoggedEvents, Revoked
from telehub.errors import AuthError, FieldError, InvalidInput, TelehubError

log = logging.getLogger(__name__)

PATH = "/api/v1/ws"
SUBPROTOCOL = "telehub.v1"
_BEARER_PROTOCOL = "bearer."
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
REVOKED_REASON = "credential revoked"


@dataclass(frozen=True, slots=True)
class LivePorts:
    """The core services a live socket uses (api/app.py fills it from the hub)."""

    auth: Authenticator
    tickets: LiveTickets
    sessions: SessionRegistry
    commands: CommandService
    bus: Bus
    metrics: Metrics
    max_connections: int
    frame_interval_seconds: float


class Clients:
    """This app's WebSocket connections (on app.state): their count and shared frames."""

    def __init__(self) -> None:
        self.count = 0
        self.frames = frames.FrameCache()


async def live(scope: Scope, receive: Receive, send: Send) -> None:
    state = scope["app"].state
    ports: LivePorts = state.live
    clients: Clients = state.ws_clients
    if (await receive())["type"] != "websocket.connect":
        return
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if SUBPROTOCOL in scope.get("subprotocols", ()):
        accept["subprotocol"] = SUBPROTOCOL
    await send(accept)
    if clients.count >= ports.max_connections:
        await _close(send, TRY_AGAIN_LATER, "too many connections; retry later")
        return
    try:
        principal = await _authenticate(ports, scope)
        require(principal, TokenScope.READ)
    except AuthError as exc:
        await _close(send, POLICY_VIOLATION, str(exc)[:120])
        return
    clients.count += 1
    ports.metrics.ws_connections.inc()
    try:
        session = LiveSession(send, ports, principal, clients.frames)
        with ports.sessions.register(principal, transport="ws", on_revoke=session.revoke):
            await session.run(receive)
    finally:
        clients.count -= 1
        ports.metrics.ws_connections.dec()


async def _close(send: Send, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": reason})


async def _authenticate(ports: LivePorts, scope: Scope) -> Principal:
    secret = bearer_token(scope)
    if secret is not None:
        return await ports.auth.authenticate(secret)
    for protocol in scope.get("subprotocols", ()):
        if protocol.startswith(_BEARER_PROTOCOL):
            return await ports.auth.authenticate(protocol.removeprefix(_BEARER_PROTOCOL))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("ticket"):
        return await ports.tickets.redeem(query["ticket"][0])
    return await ports.auth.authenticate(query["token"][0] if query.get("token") else None)


class LiveSession:
    __slots__ = (
        "_cache",
        "_closer",
        "_filters",
        "_flusher",
        "_last_frame",
        "_ports",
        "_principal",
        "_send_lock",
        "_send_raw",
        "_subscription",
        "_watched",
    )

    def __init__(
        self, send: Send, ports: LivePorts, principal: Principal, cache: frames.FrameCache
    ) -> None:
        self._send_raw = send
        self._cache = cache
        self._ports = ports
        self._principal = principal
        self._filters: dict[str | int, Filter] = {}
        self._watched: dict[str, str | int | None] = {}  # command id → request id
        self._subscription: Subscription | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Set once the credential is revoked: the task that closes the socket.
        self._closer: asyncio.Task[None] | None = None
        self._send_lock: asyncio.Lock | None = None
        self._last_frame = 0.0

    async def run(self, receive: Receive) -> None:
        """Until the client goes (or a reply finds it gone)."""
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    if message.get("reason") == KEEPALIVE_TIMEOUT:
                        self._ports.metrics.ws_dropped.labels("keepalive").inc()
                    return
                raw = message.get("text") or message.get("bytes") or b""
                await self._handle(raw)
        except PeerDropped:
            self._ports.metrics.ws_dropped.labels("keepalive").inc()  # it dropped mid-reply
        except OSError:
            return  # uvicorn's ClientDisconnected: a reply found the client gone
        finally:
            if self._subscription is not None:
                self._subscription.close()
            for task in (self._flusher, self._closer):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    def revoke(self, _: Revoked) -> None:
        """The credential was revoked: nothing more is sent or done, and the socket closes
        with 1008 (the receive loop then gets the disconnect and ends)."""
        if self._subscription is not None:
            self._subscription.close()
        self._closer = asyncio.get_running_loop().create_task(
            self._close_revoked(), name="ws-revoked"
        )

    async def _close_revoked(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()  # a frame it is stuck sending to a slow client, say
            await asyncio.gather(self._flusher, return_exceptions=True)
        async with self._lock():
            with contextlib.suppress(OSError):  # the client is gone already
                await _close(self._send_raw, POLICY_VIOLATION, REVOKED_REASON)

    async def _handle(self, raw: str | bytes) -> None:
        if self._closer is not None:
            return  # revoked: the close is on its way
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
        self._filters[op.id] = Filter(devices, metrics)
        self._join_bus()
        await self._send(frames.reply("subscribed", op.id))

    async def _unsubscribe(self, op: ops.Unsubscribe) -> None:
        if self._filters.pop(op.id, None) is None:
            raise InvalidInput(
                f"no subscription {op.id!r}", [FieldError(detail="unknown id", pointer="#/id")]
            )
        await self._send(frames.reply("unsubscribed", op.id))

    async def _command(self, op: ops.SendCommand) -> None:
        require(self._principal, TokenScope.WRITE)
        self._join_bus()  # before sending, so no status change can slip past
        # Holding the send lock keeps the first status push behind this reply.
        async with self._lock():
            command = await self._ports.commands.send(
                op.device_id, name=op.name, params=op.params, ttl_s=op.ttl_s
            )
            self._watched[command.id] = op.id
            body = CommandOut.of(command).model_dump(mode="json")
            await self._send_unlocked(frames.reply("command", op.id, command=body))

    def _join_bus(self) -> None:
        if self._subscription is None:
            self._subscription = self._ports.bus.subscribe(
                [Channel.READINGS, Channel.EVENTS], on_ready=self._ready
            )

    def _ready(self) -> None:
        """Something arrived for an idle connection: start a flusher (one at a time)."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="ws-flush")

    async def _flush(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        interval = self._ports.frame_interval_seconds
        frames_sent = self._ports.metrics.ws_frames
        try:
            while True:
                # Coalesce: after a frame, wait for the next tick of one clock shared by
                # every connection, so they all take the same run of messages and
                # share its frame. After a quiet interval, send at once.
                now = time.monotonic()
                if interval and now - self._last_frame < interval:
                    await asyncio.sleep((now // interval + 1) * interval - now)
                delivery = subscription.take()
                if delivery is None:
                    # No await since take(): nothing can arrive unseen before this.
                    self._flusher = None
                    return
                self._last_frame = time.monotonic()
                for kind, frame in self._frames(delivery):
                    await self._send(frame)
                    frames_sent.labels(kind).inc()
        except OSError:
            pass  # the client is gone; the receive loop sees the disconnect and ends
        except Exception:
            log.exception("live WebSocket: sending failed")
        self._flusher = None

    def _frames(self, delivery: Delivery) -> list[tuple[str, str | bytes]]:
        out: list[tuple[str, str | bytes]] = []
        if delivery.dropped:
            out.append(("gap", frames.gap_frame(delivery.dropped, reason="slow-consumer")))
        if delivery.interrupted:
            out.append(("gap", frames.gap_frame(None, reason="bus-interrupted")))
        readings = [m for m in delivery.messages if isinstance(m, LiveReadings)]
        if readings:
            for sub_id, want in self._filters.items():
                frame = self._cache.readings(readings, sub_id, want)
                if frame is not None:
                    out.append(("readings", frame))
            out.extend(self._state_frames(readings))
        for message in delivery.messages:
            if isinstance(message, LoggedEvents):
                out.extend(self._event_frames(message))
        return out

    def _state_frames(self, messages: list[LiveReadings]) -> list[tuple[str, str | bytes]]:
        """Device state changes, to every subscription of the device (metrics aside)."""
        return [
            ("state", frames.state_frame(sub_id, item))
            for message in messages
            for item in message.items
            if item.state
            for sub_id, want in self._filters.items()
            if want.wants_device(item.device_id)
        ]

    def _event_frames(self, message: LoggedEvents) -> list[tuple[str, str | bytes]]:
        out: list[tuple[str, str | bytes]] = []
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
                    if not CommandStatus(event.data["status"]).open:
                        del self._watched[command_id]
                else:
                    out.extend(
                        ("command_status", frames.command_frame(sub_id, event))
                        for sub_id, want in self._filters.items()
                        if want.wants_device(event.device_id)
                    )
        return out

    def _lock(self) -> asyncio.Lock:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        return self._send_lock

    async def _send(self, frame: str | bytes) -> None:
        async with self._lock():
            await self._send_unlocked(frame)

    async def _send_unlocked(self, frame: str | bytes) -> None:
        if self._closer is not None:
            return  # revoked: nothing more goes out, and uvicorn refuses sends after a close
        text = frame if isinstance(frame, str) else frame.decode()
        await self._send_raw({"type": "websocket.send", "text": text})


def _error(request_id: str | int | None, exc: TelehubError) -> bytes:
    errors = exc.errors if isinstance(exc, InvalidInput) else []
    detail = exc.detail if isinstance(exc, InvalidInput) else str(exc)
    body: dict[str, Any] = {
        "code": slug_of(exc),
        "detail": detail,
        "errors": [
            {k: v for k, v in (("detail", e.detail), ("pointer", e.pointer)) if v is not None}
            for e in errors
        ],
    }
    return frames.reply("error", request_id, **body)
