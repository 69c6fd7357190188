"""``POST /api/v1/devices/{device_id}/telemetry``, answered without the framework.

It is the request a hub serves most (every device, every reading), and
FastAPI's routing, dependency solving and middleware cost more per request
than all of telehub's own ingest work: profiled under single-reading load they
took about 60 % of the event loop's time, against about 15 % for
authentication, parsing and queueing. So the app ``create_app`` returns
(api/front.py) hands every telemetry POST to :class:`TelemetryPost`, which
calls the core's ingest gate directly; FastAPI only describes the operation
in OpenAPI (:func:`openapi_operation`). The contract is that of every other
route: the body limit, problem+json errors, rejected input recorded.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import Receive, Scope, Send

from telehub.api.limits import BodyTooLarge, declared_over
from telehub.api.problems import problem, problem_of
from telehub.api.schemas import DEVICE_ID_DESCRIPTION, IngestAccepted
from telehub.core.ingest_gate import BodyKind, IngestGate
from telehub.core.rejected import EXCERPT_BYTES
from telehub.domain.readings import DEVICE_ID_PATTERN, is_device_id
from telehub.errors import FieldError, InvalidInput, TelehubError

log = logging.getLogger(__name__)

PATH = "/api/v1/devices/{device_id}/telemetry"
_PATH = re.compile(r"/api/v1/devices/([^/]+)/telemetry")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


def device_of(scope: Scope) -> str | None:
    """The device id segment of a telemetry POST (valid or not); None for any other request."""
    if scope["method"] != "POST":
        return None
    match = _PATH.fullmatch(scope["path"])
    return None if match is None else match.group(1)


class TelemetryPost:
    """Authenticate, read, decode and store one telemetry POST; 202 once committed."""

    def __init__(self, *, max_body_bytes: int) -> None:
        self.limit = max_body_bytes

    async def __call__(
        self,
        gate: IngestGate,
        device_id: str,
        secret: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        try:
            accepted = await self._accept(gate, device_id, secret, scope, receive)
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

    async def _accept(
        self, gate: IngestGate, device_id: str, secret: str | None, scope: Scope, receive: Receive
    ) -> IngestAccepted:
        if not is_device_id(device_id):
            raise InvalidInput(
                "the request is invalid",
                [
                    FieldError(
                        detail=f"String should match pattern '{DEVICE_ID_PATTERN}'",
                        parameter="device_id",
                    )
                ],
            )
        principal = await gate.sender(secret)
        gate.authorize(principal, device_id)
        try:
            raw = await self._body(scope, receive)
        except BodyTooLarge as exc:
            await gate.refuse_too_large(transport="http", device_id=device_id, head=exc.head)
        telemetry = await gate.decode(
            transport="http", device_id=device_id, payload=raw, kind=BodyKind.TELEMETRY
        )
        result = await gate.submit(principal, telemetry, transport="http", payload=raw)
        return IngestAccepted(
            accepted=result.accepted, duplicates=result.duplicates, state=result.state
        )

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


def openapi_operation(problem_responses: dict[int, Any]) -> dict[str, Any]:
    """The OpenAPI description of the POST, which no FastAPI route serves."""
    return {
        "tags": ["telemetry"],
        "summary": "Ingest telemetry",
        "description": (
            "Store readings; answers 202 only after they are committed.\n\n"
            "Authenticate with the device's token or an API token of scope `write`.\n"
            "A resent batch is stored once and counted under `duplicates`."
        ),
        "operationId": "ingest_telemetry",
        "security": [{"HTTPBearer": []}],
        "parameters": [
            {
                "name": "device_id",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "pattern": DEVICE_ID_PATTERN,
                    "description": DEVICE_ID_DESCRIPTION,
                    "title": "Device Id",
                },
                "description": DEVICE_ID_DESCRIPTION,
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TelemetryBody"}}
            },
        },
        "responses": {
            "202": {
                "description": "Committed: the readings are stored",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/IngestAccepted"}}
                },
            },
            **{str(code): answer for code, answer in problem_responses.items()},
        },
    }
