"""A minimal RFC 6455 client for the fan-out benchmark: frames parsed by hand, on uvloop.

A client library (websockets, aiohttp) spends ~10-15 µs of Python per received
message; with one message per reading (the bare baseline) and two cpus the
clients, not the server, would set the ceiling. This client only splits the
byte stream into frames and hands each complete text message, with the time
its last bytes arrived, to a sink; it answers pings and closes. It offers no
extension (no permessage-deflate), so the server sends plain frames, and it is
the same client for telehub and the baselines.

Even so, a message a read costs a client ~12 µs here (the wake-up, the read
and the call), about what the server spends to send it. With ``pause`` set,
a connection stops reading for that long after each read (as a client polling
its sockets would), so one read takes whatever arrived meanwhile: about half
the cost per small message, at up to ``pause`` more latency. The rate steps
use it, for telehub and the baseline alike; the latency measurement does not.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

TEXT, CLOSE, PING, PONG, CONT = 0x1, 0x8, 0x9, 0xA, 0x0

Sink = Callable[[bytes, float], None]  # (message, monotonic time its last byte arrived)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.3: a client masks everything it sends)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    repeated = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return head + mask + masked


class RawClient(asyncio.Protocol):
    """One WebSocket connection; ``opened`` resolves after the 101 answer."""

    def __init__(self, url: str, sink: Sink) -> None:
        parts = urlsplit(url)
        self._request = (
            f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._sink = sink
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._upgraded = False
        self.pause = 0.0  # seconds to stop reading after each read (see the module docstring)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(TEXT, text))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.pause and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self.pause, self.transport.resume_reading)
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self._buf
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, start = b1 & 0x7F, pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            self._frame(b0 & 0x80, b0 & 0x0F, payload, now)
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode in (TEXT, CONT) or opcode == 0x2:
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join((*self._fragments, payload))
                self._fragments.clear()
            self._sink(payload, now)
        elif opcode == PING:
            assert self.transport is not None
            self.transport.write(client_frame(PONG, payload))
        elif opcode == CLOSE:
            self.close()


async def open_raw(url: str, sink: Sink) -> RawClient:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} names no host and port")
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: RawClient(url, sink), parts.hostname, parts.port
    )
    await client.opened
    return client
