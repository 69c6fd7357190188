"""One rule for the media type of a request body, on every endpoint that takes one.

Every telehub body is JSON. A body is read as JSON when its ``Content-Type``
is a JSON type (``application/json``, ``application/*+json``), when there is
none, and when it is ``application/x-www-form-urlencoded``, the type curl
(``-d``) and wget send when not told otherwise: no telehub endpoint takes a
form, so that type only ever means a tool's default, and a body that is not
JSON is refused by the parser anyway (422 naming the problem). Any other
declared type (``text/plain``, what a browser's ``fetch`` sends for a string
body; ``multipart/form-data``; ``application/xml``) is refused with 415
problem+json, before the body is read or the sender authenticated.

The rule is applied once, by the ASGI front (api/front.py), for the telemetry
POST it answers itself and for every route of the FastAPI app behind it; for
the latter a body read as JSON gets ``Content-Type: application/json``, since
FastAPI parses only a body so declared.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Scope

from telehub.api.problems import problem

_JSON = b"application/json"
_READ_AS_JSON = frozenset({b"", _JSON, b"application/x-www-form-urlencoded"})


def _json_type(media_type: bytes) -> bool:
    return media_type in _READ_AS_JSON or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


def check_body(scope: Scope) -> Response | None:
    """A 415 answer for a body of a type that is not read as JSON; else None, having made
    a body read as JSON say so in the scope (for FastAPI's parser)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    declared: bytes | None = None
    at = -1
    body = False
    for index, (name, value) in enumerate(headers):
        if name == b"content-type":
            declared, at = value, index
        elif name == b"content-length":
            body = body or value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            body = True
    if not body:
        return None
    media_type = (declared or b"").split(b";", 1)[0].strip().lower()
    if not _json_type(media_type):
        shown = (declared or b"").decode("latin-1")[:100]
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"request bodies are JSON: send Content-Type: application/json, not {shown!r}",
            instance=scope["path"],
        )
    if media_type != _JSON and not media_type.endswith(b"+json"):
        fixed = (b"content-type", _JSON)
        scope["headers"] = (
            [*headers, fixed] if at < 0 else [*headers[:at], fixed, *headers[at + 1 :]]
        )
    return None
