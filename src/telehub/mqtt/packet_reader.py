"""The embedded broker's view of a connection: whole MQTT packets, bounded, checked.

amqtt reads a packet's remaining length and then that many bytes, however
many (up to 256 MB), into memory. And when it refuses a PUBLISH for a
wildcard in its topic (MQTT-3.3.2-2) it has read the topic but not the
payload, and goes on to parse the payload as further packets. This reader
frames the stream itself, in front of amqtt: it reads one fixed header,
refuses a packet over the limit before reading any of its body, checks a
PUBLISH's topic name, and only then lets amqtt read that packet from memory.
A refusal is reported and ends the connection (MQTT 3.1.1 has no other
answer): amqtt sees the end of the stream, which it handles quietly.

It also holds back the next packet while the connection has too many
publishes waiting for their commit, so TCP slows a device down instead of
the broker buffering without bound. And it serves nothing more once the
connection is ended from this side (``end``: its credential was revoked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from amqtt.adapters import ReaderAdapter

from telehub.errors import FieldError, InvalidInput, PayloadTooLarge, ProtocolViolation

_PUBLISH = 3
# A topic of at most 65,535 bytes, its length, a packet id: what a PUBLISH
# carries besides its payload.
PUBLISH_OVERHEAD = 2 + 65_535 + 2
_WILDCARDS = ("+", "#", "\x00")

Violation = Callable[[InvalidInput, str | None, bytes], None]


class PacketReader(ReaderAdapter):
    """An amqtt ReaderAdapter serving one checked packet at a time."""

    def __init__(
        self,
        stream: asyncio.StreamReader,
        *,
        max_packet_bytes: int,
        max_in_flight: int,
        on_violation: Violation,
    ) -> None:
        self._stream = stream
        self._max_packet = max_packet_bytes
        self._max_in_flight = max_in_flight
        self._on_violation = on_violation
        self._packet = b""
        self._pos = 0
        self._closed = False
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        # Set once the connection's login is known: refusals name the device.
        self.device_id: str | None = None

    async def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._packet) and (self._closed or not await self._next_packet()):
            return b""
        end = len(self._packet) if n < 0 else self._pos + n
        if end > len(self._packet):
            # amqtt wants more than the packet holds: its fields contradict its length.
            self._refuse(
                ProtocolViolation(
                    "a packet's fields are longer than its remaining length",
                    [FieldError(detail="malformed packet", pointer="#")],
                ),
                self._packet[:64],
            )
            return b""
        chunk = self._packet[self._pos : end]
        self._pos = end
        return chunk

    def feed_eof(self) -> None:
        self._stream.feed_eof()

    @property
    def ended(self) -> bool:
        """No further packet is served: refused, or ended with ``end``."""
        return self._closed

    def end(self) -> None:
        """Serve nothing more, not even a packet already read (the caller closes the socket)."""
        self._closed = True
        self._packet, self._pos = b"", 0
        self._room.set()

    def hold(self) -> None:
        """A publish of this connection is in flight until ``release``."""
        self._in_flight += 1
        if self._in_flight >= self._max_in_flight:
            self._room.clear()

    def release(self) -> None:
        self._in_flight -= 1
        if self._in_flight < self._max_in_flight:
            self._room.set()

    async def _next_packet(self) -> bool:
        """Read the next whole packet into memory; False at the end of the stream."""
        await self._room.wait()
        try:
            first = await self._stream.readexactly(1)
            length, header = await self._remaining_length()
            if length is None:
                return False
            if length > self._max_packet:
                self._refuse(
                    PayloadTooLarge(
                        f"an MQTT packet of {length} bytes; the limit is {self._max_packet}",
                        [FieldError(detail="packet too large", pointer="#")],
                    ),
                    b"",
                )
                return False
            body = await self._stream.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        if self._closed:
            return False  # ended while this packet was read
        if first[0] >> 4 == _PUBLISH:
            problem = _publish_problem(first[0], body)
            if problem is not None:
                self._refuse(problem, body[:200])
                return False
        self._packet = first + header + body
        self._pos = 0
        return True

    async def _remaining_length(self) -> tuple[int | None, bytes]:
        """The variable-length integer after the first byte (MQTT-2.2.3), and its bytes."""
        value, shift, raw = 0, 0, b""
        for _ in range(4):
            byte = await self._stream.readexactly(1)
            raw += byte
            value |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return value, raw
            shift += 7
        self._refuse(
            ProtocolViolation(
                "a remaining length longer than four bytes",
                [FieldError(detail="malformed packet", pointer="#")],
            ),
            b"",
        )
        return None, raw

    def _refuse(self, error: InvalidInput, excerpt: bytes) -> None:
        self._closed = True
        self._packet, self._pos = b"", 0
        self._on_violation(error, self.device_id, excerpt)


def _publish_problem(first: int, body: bytes) -> InvalidInput | None:
    """Why this PUBLISH breaks the protocol, or None."""
    if (first >> 1) & 0x03 == 3:
        return ProtocolViolation(
            "a PUBLISH with QoS 3 (MQTT-3.3.1-4)",
            [FieldError(detail="QoS must be 0, 1 or 2", parameter="qos")],
        )
    size = int.from_bytes(body[:2], "big") if len(body) >= 2 else -1
    if size < 1 or len(body) < 2 + size:
        return ProtocolViolation(
            "a PUBLISH without a topic name (MQTT-4.7.3-1)",
            [FieldError(detail="empty or truncated topic", parameter="topic")],
        )
    try:
        topic = body[2 : 2 + size].decode("utf-8")
    except UnicodeDecodeError:
        return ProtocolViolation(
            "a PUBLISH whose topic is not UTF-8 (MQTT-1.5.3-1)",
            [FieldError(detail="not UTF-8", parameter="topic")],
        )
    if any(c in topic for c in _WILDCARDS):
        return ProtocolViolation(
            f"a PUBLISH to {topic[:200]!r}: a topic name holds no wildcard "
            "or null character (MQTT-3.3.2-2)",
            [FieldError(detail="wildcard in a topic name", parameter="topic")],
        )
    return None
