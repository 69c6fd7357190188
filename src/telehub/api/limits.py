"""A hard cap on request bodies, enforced before any parsing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telehub.api.problems import problem


def too_large_detail(limit: int) -> str:
    return f"request bodies are limited to {limit} bytes"


class BodyTooLarge(HTTPException):
    """A body over the limit: an HTTPException, so FastAPI's body parsing passes it on
    instead of answering 400 (the error handlers answer 413).

    ``head`` is the body's first bytes, all that is kept of it, for a route that records
    the refusal as rejected input (the telemetry POST).
    """

    def __init__(self, limit: int, head: bytes = b"") -> None:
        super().__init__(413, too_large_detail(limit))
        self.limit = limit
        self.head = head


def declared_over(scope: Scope, limit: int) -> bool:
    """Whether the request's Content-Length is over ``limit`` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return True
    return False


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes, declared (Content-Length) or streamed (chunked).

    The app runs either way; reading such a body raises :class:`BodyTooLarge` before it
    is over the limit in memory: at once when its Content-Length says so (after the
    first chunk), else as soon as the chunks read pass the limit. (The telemetry POST,
    which records the body's head as rejected input, reads its own body: api/telemetry_post.py.)
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over = declared_over(scope, self.limit)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if over or seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "payload-too-large", "Payload too large", too_large_detail(self.limit)
        )
        await response(scope, receive, send)
