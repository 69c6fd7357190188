"""uvicorn's HTTP protocol with deadlines for slow clients and a connection cap.

uvicorn reads a request head and body for as long as the client takes: a
connection that sends half a head, or a body a byte a minute, is held for good,
and enough of them exhaust the process's file descriptors. This protocol is the
one uvicorn picks itself (httptools'), with a few of its methods extended:

- a request head must be whole within ``header_timeout`` seconds of the
  connection, or, on a kept-alive connection, of the first byte after the last
  response;
- its body must be whole within ``body_timeout`` seconds of the head;
- the process holds at most ``max_connections`` HTTP connections (a WebSocket,
  once upgraded, counts against ``ws_max_connections`` instead).

A request cut off by a deadline is answered 408 (problem+json) if any of it came,
its app is told the client left (nothing of the body is handed on), and the
connection is closed.

At the cap, a new connection takes the place of the one that has waited longest
on its client: for a request head (a new connection, or one kept alive between
requests) or for the rest of a body. That is all a slowloris attack holds, and it
cannot shut out a client that sends its request at once: that connection stops
waiting on its client as soon as its request is in, and the only connections never
taken are those the server is working on (a response being made or sent, an SSE
stream). Only when every connection is one of those is a new one closed at once.
Refusing every newcomer at the cap instead would let a few thousand half-open
sockets lock everyone out until their deadline.

uvicorn's internals used here are pinned (pyproject.toml) and checked by
tests/security/test_uvicorn_internals.py.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# Nothing of FastAPI or pydantic at import: a worker of `telehub api --workers N`
# imports this module to unpickle its config, before it answers its supervisor's
# health pings, and a worker slow to answer them is killed and started again.
if TYPE_CHECKING:
    from telehub.config import Settings
    from telehub.core.metrics import Metrics

# The app's lifespan puts the hub's Metrics in uvicorn's lifespan state under this
# key (api/app.py): that state is what uvicorn shares between an app and its protocols.
METRICS_STATE = "telehub.metrics"

MAX_CONNECTIONS_CEILING = 10_000


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What a client gets to send its request, and how many connections a process holds."""

    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=settings.http_max_connections or default_max_connections(),
        )


def default_max_connections() -> int:
    """Half the process's open-file limit, at most 10,000.

    The other half is left to WebSockets, the database, MQTT and gRPC clients and
    files: past the limit, accepting a connection fails and asyncio stops accepting
    any for a second.
    """
    try:
        import resource
    except ImportError:  # not Unix
        return MAX_CONNECTIONS_CEILING
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS_CEILING
    return max(1, min(MAX_CONNECTIONS_CEILING, soft // 2))


class ConnectionCap:
    """The HTTP connections of one server process: how many, and which wait on their client."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        # Connections waiting on their client, the one waiting longest first.
        self._waiting: dict[GuardedHttpProtocol, None] = {}
        self._metrics: Metrics | None = None

    def admit(self, connection: GuardedHttpProtocol, app_state: dict[str, Any]) -> bool:
        """Count a new connection, making room by evicting one if need be; False: refused."""
        if self._metrics is None:
            self._metrics = app_state.get(METRICS_STATE)
        if self.open >= self.limit:
            victim = next(iter(self._waiting), None)
            if victim is None:
                self.count("cap_refused")
                return False
            self.count("cap_evicted")
            victim.evict()
        self.open += 1
        self._waiting[connection] = None
        self._show_open()
        return True

    def waiting(self, connection: GuardedHttpProtocol) -> None:
        """``connection`` waits on its client again (for a next request): it goes last."""
        self._waiting.pop(connection, None)
        self._waiting[connection] = None

    def serving(self, connection: GuardedHttpProtocol) -> None:
        """The server works on ``connection``'s request: it cannot be evicted."""
        self._waiting.pop(connection, None)

    def release(self, connection: GuardedHttpProtocol) -> None:
        self._waiting.pop(connection, None)
        self.open -= 1
        self._show_open()

    def count(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.http_connections_closed.labels(reason=reason).inc()

    def _show_open(self) -> None:
        if self._metrics is not None:
            self._metrics.http_connections.set(self.open)


@functools.cache
def _timeout_answer(detail: str) -> bytes:
    """A 408's headers after the status line, and its problem+json body."""
    from telehub.api.problems import PROBLEM_JSON, TYPE_PREFIX  # loaded with the app

    body = orjson.dumps(
        {
            "type": TYPE_PREFIX + "request-timeout",
            "title": "Request timeout",
            "status": 408,
            "detail": detail,
        }
    )
    return b"".join(
        [
            b"content-type: %s\r\n" % PROBLEM_JSON.encode(),
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


_HEAD_TOO_SLOW = "the request head did not arrive in time"
_BODY_TOO_SLOW = "the request body did not arrive in time"


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with the deadlines and the cap of :class:`HttpConfig`."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, HttpConfig):
            raise TypeError("GuardedHttpProtocol needs a config from uvicorn_config()")
        self._limits = config.client_limits
        self._cap = config.connection_cap
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._waiting = False  # on the client: for a request head, or the rest of a body
        self._in_head = False  # a head has begun and is not whole
        self._body_pending = False  # a head is whole, its body is not
        self._upgraded = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._cap.admit(self, self.app_state):
            transport.abort()
            return
        self._admitted = self._waiting = True
        self._header_timer = self.loop.call_later(self._limits.header_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._stop_timers()
        self._release()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Timers start only for what a chunk leaves unfinished: a request that comes
        # in one piece, the common case, sets none on a kept-alive connection.
        if self._upgraded or self.transport.is_closing():
            return
        if self._body_pending:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._limits.body_timeout, self._body_late)
        elif self._waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(self._limits.header_timeout, self._head_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_pending = True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_pending = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._waiting and self.cycle is not None and not self.cycle.response_complete:
            self._waiting = False
            self._cap.serving(self)

    def on_response_complete(self) -> None:
        idle = not self.pipeline
        super().on_response_complete()
        if idle and self._admitted and not self.transport.is_closing():
            self._waiting = True
            self._cap.waiting(self)

    def handle_websocket_upgrade(self) -> None:
        # From here on the connection is a WebSocket, under ws_max_connections.
        self._upgraded = True
        self._stop_timers()
        self._release()
        super().handle_websocket_upgrade()

    def evict(self) -> None:
        """Close this connection, waiting on its client, for a new one at the cap."""
        self._stop_timers()
        self._release()
        self.transport.abort()

    def _head_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        self._cap.count("header_timeout")
        if self._in_head:
            self._answer_408(_HEAD_TOO_SLOW)
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        self._cap.count("body_timeout")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self._answer_408(_BODY_TOO_SLOW)
            # The app, waiting for the body, gets http.disconnect now; whatever it
            # answers is dropped, as for a client that left (uvicorn's own flag).
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _answer_408(self, detail: str) -> None:
        head = [b"HTTP/1.1 408 Request Timeout\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*head, _timeout_answer(detail)]))

    def _stop_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _release(self) -> None:
        if self._admitted:
            self._admitted = self._waiting = False
            self._cap.release(self)


class HttpConfig(uvicorn.Config):
    """uvicorn's Config, serving HTTP through :class:`GuardedHttpProtocol` with ``limits``.

    One per server process: ``telehub api --workers N`` hands each worker a copy
    (pickled), so each has a cap of its own.
    """

    def __init__(self, app: Any, *, limits: ClientLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpProtocol, **kwargs)
        self.client_limits = limits
        self.connection_cap = ConnectionCap(limits.max_connections)
