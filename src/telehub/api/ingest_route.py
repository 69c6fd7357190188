"""``POST /api/v1/devices/{device_id}/telemetry`` answered without the framework.

It is the request a hub serves most (every device, every reading), and
FastAPI's routing, dependency solving and middleware cost more per request
than all of telehub's own ingest work: profiled under single-reading load they
took about 60 % of the event loop's time, against about 15 % for
authentication, parsing and queueing. This ASGI middleware, set in front of
all of FastAPI's layers (api/app.py), answers the one path itself and calls
the same :func:`accept_telemetry` as the FastAPI route, which stays to document
the endpoint in OpenAPI and to answer what the fast path passes on (an invalid
device id gets the framework's own 422). Same contract either way: the body
limit, problem+json errors, rejected inputs recorded.
"""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from telehub.api.auth_gate import bearer_token
from telehub.api.limits import BodyTooLarge, declared_over
from telehub.api.problems import problem, problem_of
from telehub.api.routes.telemetry import accept_telemetry, refuse_too_large
from telehub.core.rejected import EXCERPT_BYTES
from telehub.domain.readings import is_device_id
from telehub.errors import TelehubError
from telehub.runtime import Hub

log = logging.getLogger(__name__)

_PATH = re.compile(r"/api/v1/devices/([^/]+)/telemetry")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


class TelemetryIngestRoute:
    """ASGI middleware: telemetry POSTs handled here, everything else passed on."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.fullmatch(scope["path"])
        if match is None or not is_device_id(device_id := match.group(1)):
            await self.app(scope, receive, send)
            return
        hub: Hub = scope["app"].state.hub
        try:
            secret = bearer_token(scope)
            try:
                raw = await self._body(scope, receive)
            except BodyTooLarge as exc:
                await refuse_too_large(hub, device_id, secret, head=exc.head, limit=self.limit)
            accepted = await accept_telemetry(hub, device_id, secret, raw)
        except _Disconnected:
            return
        except TelehubError as exc:
            await problem_of(exc, instance=scope["path"])(scope, receive, send)
            return
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            crash = problem(500, "internal", "Internal error", "unexpected error; see server log")
            await crash(scope, receive, send)
            return
        body = b'{"accepted":%d,"duplicates":%d,"state":%d}' % (
            accepted.accepted,
            accepted.duplicates,
            accepted.state,
        )
        headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body; BodyTooLarge with its first bytes once it is over the limit.

        A Content-Length over the limit is refused after the first chunk, never read on.
        """
        over = declared_over(scope, self.limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if over or size > self.limit:
                head = chunks[0] if chunks else chunk
                raise BodyTooLarge(self.limit, head[:EXCERPT_BYTES])
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
