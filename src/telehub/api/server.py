"""uvicorn's configuration from Settings, the same for ``serve``, ``api`` and tests."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from telehub.api.ws_protocol import LeanWebSocketProtocol
from telehub.config import Settings


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """WebSocket limits, pings and compression come from Settings; the rest from ``overrides``.

    Pings are uvicorn's (protocol-level): a peer that stops answering is dropped
    after ``ws_ping_interval_seconds + ws_ping_timeout_seconds``, and its
    subscription goes with it.
    """
    options: dict[str, Any] = {
        "log_level": "info",
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "ws": LeanWebSocketProtocol,
        "ws_max_size": settings.ws_max_message_bytes,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "ws_per_message_deflate": settings.ws_compression,
    }
    return uvicorn.Config(app, **(options | overrides))


class Server(uvicorn.Server):
    """uvicorn's server, ending SSE streams as soon as shutdown starts.

    uvicorn waits (up to its graceful timeout) for every response to finish,
    and an SSE stream never does by itself; closing the feed's subscribers ends
    them, and their clients resume, with Last-Event-ID, on the next server.
    """

    def __init__(self, config: uvicorn.Config, *, app: Any) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        feed = getattr(self._app.state, "event_feed", None)
        if feed is not None:
            feed.close_subscribers()
        await super().shutdown(sockets)
