"""401 for a write to the API without a bearer token, before its body is read.

Every POST, PUT and PATCH under ``/api/`` needs a token, so without one the answer
is 401 whatever the body holds, and the body is not waited for: a client that sends
a head with a large Content-Length and then nothing, or its body at a trickle, gets
its 401 at once instead of holding a connection for the body deadline. (uvicorn
drops what still comes of that body on a kept-alive connection, within the same
deadline; with ``Expect: 100-continue`` it is never sent.)

A token that is present but wrong is still found out after the body, where the
routes authenticate. Telling needs a lookup (the database, on a cache miss) that
doing here as well would double for every request with a token, and it would not
change what a client with a made-up token can do: its body is bounded like anyone
else's, by the body deadline, the cap on connections and ``max_body_bytes``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from telehub.api.problems import problem_of
from telehub.core.auth import bearer_secret
from telehub.errors import Unauthenticated

_WRITES = frozenset({"POST", "PUT", "PATCH"})


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's ``Authorization: Bearer …`` header (HTTP or WebSocket)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bearer_secret(value.decode("latin-1"))
    return None


class BearerRequired:
    """ASGI middleware: a write under ``/api/`` with no bearer token is answered 401 here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITES
            and scope["path"].startswith("/api/")
            and bearer_token(scope) is None
        ):
            refusal = Unauthenticated("a bearer token is required")
            await problem_of(refusal, instance=scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)
