"""The ASGI application ``create_app`` returns: the two hottest paths, then FastAPI.

A telemetry POST (api/telemetry_post.py) and the live WebSocket (api/ws.py)
are answered here, ahead of every layer of the framework; everything else
goes to the FastAPI app, after a 401 for any write without a token
(api/auth_gate.py). What holds for every HTTP request is applied here, once,
ahead of both: CORS (when origins are configured) and the media type of a
body (api/media_type.py). In front of the framework's own layers the hub took
86-91 µs of CPU per single-reading POST instead of about 100, and served
about 6 % more of them (32 clients, PostgreSQL, A/B in one run); a live
socket holds no framework objects for its whole life.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from telehub.api import ws
from telehub.api.auth_gate import BearerRequired, bearer_token
from telehub.api.media_type import check_body
from telehub.api.telemetry_post import TelemetryPost, device_of

# What a browser page of an allowed origin may use. Credentials are bearer tokens
# in a header, never cookies, so none are "allowed" in CORS's sense.
CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")
CORS_EXPOSED = ("Retry-After", "WWW-Authenticate", "Location")


class TelehubApp:
    """The REST, WebSocket and SSE API as one ASGI app; ``api`` is the FastAPI behind it."""

    def __init__(
        self, api: FastAPI, *, max_body_bytes: int, cors_origins: Sequence[str] = ()
    ) -> None:
        self.api = api
        self._telemetry = TelemetryPost(max_body_bytes=max_body_bytes)
        self._framework: ASGIApp = BearerRequired(api)
        # Without origins, no CORS layer at all: nothing to pay on the hottest path.
        self._http: ASGIApp = self._serve_http
        if cors_origins:
            self._http = CORSMiddleware(
                self._serve_http,
                allow_origins=list(cors_origins),
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSED,
                max_age=600,
            )

    @property
    def state(self) -> Any:
        """The app's state (the hub and its ports, set by the lifespan), as FastAPI keeps it."""
        return self.api.state

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The app's lifespan, for a caller that serves it without an ASGI server."""
        return self.api.router.lifespan_context(self.api)

    def openapi(self) -> dict[str, Any]:
        return self.api.openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "lifespan":
            scope["app"] = self.api
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket" and scope["path"] == ws.PATH:
            await ws.live(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = check_body(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        device_id = device_of(scope)
        if device_id is not None:
            gate = self.api.state.ingest_gate
            await self._telemetry(gate, device_id, bearer_token(scope), scope, receive, send)
            return
        await self._framework(scope, receive, send)
