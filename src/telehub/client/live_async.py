"""The live feeds on aiohttp, for AsyncClient: the WebSocket tail and the resuming SSE feed.

The same messages and the same rules as the sync versions (:mod:`telehub.client.ws`,
:mod:`telehub.client.sse`): a 1008 close is final (LiveClosed); the SSE feed
resumes with ``Last-Event-ID`` after a dropped connection, so each event is
seen once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson

from telehub.client.errors import ApiError, LiveClosed, api_error
from telehub.client.sse import ServerSentEvent, SseDecoder
from telehub.client.ws import live_error, subscribe_message, ws_url

_FINAL_CODES = (1008,)


async def tail(
    session: aiohttp.ClientSession,
    url: str,
    *,
    devices: list[str] | None = None,
    metrics: list[str] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every message of one subscription, until the server closes the socket."""
    try:
        socket = await session.ws_connect(ws_url(url), max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        raise api_error(exc.status, {"detail": "the server refused the WebSocket"}) from None
    async with socket:
        await socket.send_str(orjson.dumps(subscribe_message(devices, metrics)).decode())
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue
            message: dict[str, Any] = orjson.loads(frame.data)
            if message.get("type") == "error":
                raise live_error(message)
            if message.get("type") != "subscribed":
                yield message
        if socket.close_code in _FINAL_CODES:
            raise LiveClosed(socket.close_code or 0, "")


async def events(
    session: aiohttp.ClientSession,
    url: str,
    *,
    types: list[str] | None = None,
    last_event_id: str | None = None,
    on_reconnect: Callable[[Exception], None] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """Events of ``GET {url}/api/v1/events`` for ever, resuming after every disconnect."""
    decoder = SseDecoder()
    decoder.last_id = last_event_id
    connected = False
    params = {"types": ",".join(types)} if types else {}
    while True:
        headers = {"Accept": "text/event-stream"}
        if decoder.last_id:
            headers["Last-Event-ID"] = decoder.last_id
        try:
            async with session.get(
                f"{url.rstrip('/')}/api/v1/events",
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            ) as response:
                if response.status >= 400:
                    raise api_error(response.status, await _body(response))
                connected = True
                async for chunk in response.content.iter_any():
                    for event in decoder.feed(chunk):
                        yield event
            problem: Exception = ConnectionError("the server ended the stream")
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not connected:
                raise
            problem = exc
        except ApiError as exc:
            if exc.status < 500:
                raise
            problem = exc
        if on_reconnect is not None:
            on_reconnect(problem)
        await asyncio.sleep((decoder.retry_ms or 3000) / 1000)


async def _body(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None
