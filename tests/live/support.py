"""A real uvicorn server on a free loopback port, for WebSocket and SSE clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from telehub.api.app import create_app
from telehub.api.server import Server, uvicorn_config
from telehub.domain.devices import Scope
from telehub.hub import Hub
from telehub.listeners import bind


@dataclass
class LiveServer:
    hub: Hub
    base: str
    admin: str
    server: Server

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/api/v1/ws"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    async def token(self, scope: Scope) -> str:
        return await self.token_of(self.hub, scope)

    @staticmethod
    async def token_of(hub: Hub, scope: Scope) -> str:
        _, secret = await hub.tokens.create(name=f"live-{scope.value}", scope=scope)
        return secret

    def ws(self, token: str | None = None, **kwargs: Any) -> Any:
        return connect(self.ws_url, additional_headers=self.headers(token), **kwargs)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, headers=self.headers(), timeout=10)


@contextlib.asynccontextmanager
async def live_server(hub: Hub, **uvicorn_options: Any) -> AsyncIterator[LiveServer]:
    """``uvicorn_options`` go to uvicorn_config (``log_level``: warning unless given)."""
    sock = bind("127.0.0.1", 0, setting="(test)", flag="(test)")
    host, port = sock.getsockname()[:2]
    app = create_app(hub.settings, hub=hub)
    options = {"log_level": "warning"} | uvicorn_options
    server = Server(uvicorn_config(app, hub.settings, **options), app=app)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="test-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        # A second server on the same database finds the bootstrap token made.
        admin = await hub.tokens.bootstrap() or await LiveServer.token_of(hub, Scope.ADMIN)
        base = f"{hub.settings.http_scheme}://{host}:{port}"
        yield LiveServer(hub=hub, base=base, admin=admin, server=server)
    finally:
        server.should_exit = True
        await task


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(orjson.dumps(message).decode())


async def ping_or_close(url: str, **kwargs: Any) -> int | None:
    """Open a live WebSocket and ping: None if answered, else the server's close code."""
    async with connect(url, **kwargs) as ws:
        try:
            await send(ws, op="ping", id="p")
            assert await receive(ws) == {"type": "pong", "id": "p"}
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else -1
    return None


async def receive(ws: ClientConnection, wait: float = 5.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), wait)
    body: dict[str, Any] = orjson.loads(raw)
    return body


async def receive_until(
    ws: ClientConnection, kind: str, wait: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message of type ``kind``, and the ones that came before it."""
    before: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while True:
            message = await receive(ws, wait)
            if message["type"] == kind:
                return message, before
            before.append(message)


async def subscribe(ws: ClientConnection, sub_id: str = "s1", **filters: Any) -> None:
    await send(ws, op="subscribe", id=sub_id, devices=filters.pop("devices", ["*"]), **filters)
    reply = await receive(ws)
    assert reply == {"type": "subscribed", "id": sub_id}, reply


def gauge(metric: Any) -> float:
    """The current value of a prometheus Gauge (also one driven by set_function)."""
    return float(metric.collect()[0].samples[0].value)


async def wait_for(condition: Any, wait: float = 5.0) -> None:
    """Poll ``condition`` (a metric, say, which has no event to wait on) until it holds."""
    async with asyncio.timeout(wait):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def log_records() -> Iterator[list[logging.LogRecord]]:
    """Every record reaching uvicorn's handlers (which do not propagate) or the root logger.

    Enter it once the server runs: configuring uvicorn replaces its loggers' handlers.
    """
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access", "")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def silent_peer(server: LiveServer) -> socket.socket:
    """A client that completes the handshake, subscribes, then never reads or answers pings."""
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.socket()
    # A small receive window (set before connecting) stalls the server's writes soon.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/v1/ws?token={server.admin} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    before = gauge(server.hub.metrics.bus_subscribers)
    response = await loop.sock_recv(sock, 4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    await loop.sock_sendall(sock, _masked_text_frame('{"op":"subscribe","id":1,"devices":["*"]}'))
    await wait_for(lambda: gauge(server.hub.metrics.bus_subscribers) == before + 1)
    return sock
