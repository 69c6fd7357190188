"""A bare MQTT 3.1.1 client on a socket, for what no client library lets a test do:
see every PUBACK as it arrives, publish to a wildcard topic, announce a huge packet."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 2, 3, 4, 5, 6, 7


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(
    client_id: str,
    username: str,
    password: str,
    *,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    """CONNECT with a login; ``will`` = (topic, payload), sent at QoS 1, retained."""
    flags = 0x80 | 0x40 | (0x02 if clean else 0)
    last_will = b""
    if will is not None:
        flags |= 0x04 | (1 << 3) | 0x20
        last_will = text(will[0]) + text(will[1])
    body = text("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    return packet(0x10, body + text(client_id) + last_will + text(username) + text(password))


def publish(
    topic: str | bytes, payload: bytes, *, qos: int, packet_id: int = 0, retain: bool = False
) -> bytes:
    body = text(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | int(retain), body)


def pubrel(packet_id: int) -> bytes:
    return packet(0x62, struct.pack("!H", packet_id))


@dataclass
class Packet:
    kind: int
    body: bytes

    @property
    def packet_id(self) -> int:
        return int(struct.unpack("!H", self.body[:2])[0])


class Wire:
    """One connection: write raw packets, read whole packets (None at the end of the stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.session_present = False  # the last CONNACK's flag

    @classmethod
    async def open(cls, port: int) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def login(
        self,
        client_id: str,
        username: str,
        password: str,
        *,
        clean: bool = True,
        will: tuple[str, bytes] | None = None,
    ) -> int:
        """CONNECT; the CONNACK's return code (0: accepted)."""
        await self.send(connect(client_id, username, password, clean=clean, will=will))
        answer = await self.read()
        assert answer is not None, "the broker closed the connection instead of a CONNACK"
        assert answer.kind == CONNACK, answer
        self.session_present = bool(answer.body[0] & 1)
        return answer.body[1]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self) -> Packet | None:
        try:
            first = (await self.reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return Packet(first >> 4, await self.reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
