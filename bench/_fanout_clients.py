"""The client processes: live WebSocket readers and idle WebSocket holders (SSE: _fanout_sse).

Each is driven by ``_fanout_proc.Pool`` with commands (tuples) and answers with
plain data. Receive times are ``time.monotonic()``: CLOCK_MONOTONIC is one
clock for every process on the machine, so they compare with the loader's and
the bare server's stamps.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection
import re
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _fanout_proc import Command, serve_commands
from _fanout_stats import Histogram
from _fanout_wire import RawClient, open_raw

SUBSCRIBE = b'{"op":"subscribe","id":"s","devices":["*"]}'
_READINGS = b'{"type":"readings"'
_GAP = b'{"type":"gap"'
_SUBSCRIBED = b'{"type":"subscribed"'
_VALUE = re.compile(rb'"value":([-+0-9.eE]+)')


@dataclass
class _Live:
    """What one live connection saw since the last reset."""

    kind: str  # "telehub": values are POST numbers; "bare": values are batch due times
    subscribed: asyncio.Future[None]
    readings: int = 0
    gaps: int = 0
    last: float = 0.0
    frames: list[tuple[float, Counter[bytes]]] = field(default_factory=list)

    def __call__(self, msg: bytes, now: float) -> None:
        if msg.startswith(_READINGS):
            self.last = now
            values = _VALUE.findall(msg)
            self.readings += len(values)
            self.frames.append((now, Counter(values)))
        elif msg.startswith(_GAP):
            self.gaps += 1
        elif msg.startswith(_SUBSCRIBED) and not self.subscribed.done():
            self.subscribed.set_result(None)


async def _settle(counts: Callable[[], list[int]], expected: int, quiet: float, cap: float) -> None:
    """Until every count reaches ``expected``, or nothing moved for ``quiet`` s, or ``cap`` s."""
    deadline = time.monotonic() + cap
    seen, moved = sum(counts()), time.monotonic()
    while min(counts(), default=expected) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if sum(counts()) != seen:
            seen, moved = sum(counts()), time.monotonic()
        elif time.monotonic() - moved > quiet:
            return


class LiveClients:
    """Raw WebSocket connections subscribed to every device (``_fanout_wire``)."""

    def __init__(self) -> None:
        self._conns: list[tuple[RawClient, _Live]] = []

    async def __call__(self, command: Command) -> Any:
        match command:
            case ("connect", str(url), int(n), str(kind)):
                return await self._connect(url, n, kind)
            case ("reset",):
                for _, live in self._conns:
                    live.readings = live.gaps = 0
                    live.last = 0.0
                    live.frames.clear()
                return None
            case ("pause", float(seconds)):
                for client, _ in self._conns:
                    client.pause = seconds
                return None
            case ("settle", int(expected), float(quiet), float(cap)):
                lives = [live for _, live in self._conns]
                await _settle(lambda: [live.readings for live in lives], expected, quiet, cap)
                return [live.readings for live in lives]
            case ("stats", answers):
                return self._stats(answers)
            case ("close",) | ("exit",):
                for client, _ in self._conns:
                    client.close()
                self._conns.clear()
                return None
        raise ValueError(f"unknown command {command!r}")

    async def _connect(self, url: str, n: int, kind: str) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            live = _Live(kind, loop.create_future())
            client = await open_raw(url, live)
            client.send_text(SUBSCRIBE)
            self._conns.append((client, live))
        async with asyncio.timeout(30):
            await asyncio.gather(*(live.subscribed for _, live in self._conns))
        return len(self._conns)

    def _stats(self, answers: bytes | None) -> dict[str, Any]:
        lives = [live for _, live in self._conns]
        hist, unmatched = Histogram(), 0
        if answers is not None:  # telehub: latency = receive - the loader's 202 for that POST
            times = array("d")
            times.frombytes(answers)  # [first POST number, its 202 time, the next's, ...]
            first = int(times[0])
            for live in lives:
                for now, seqs in live.frames:
                    for key, n in seqs.items():
                        k = int(float(key)) - first + 1
                        if 0 < k < len(times) and times[k] == times[k]:  # not NaN
                            hist.add(now - times[k], n)
                        else:
                            unmatched += n
        else:  # bare: latency = receive - the time the reading's batch was due
            for live in lives:
                for now, dues in live.frames:
                    for key, n in dues.items():
                        hist.add(now - float(key), n)
        return {
            "counts": [live.readings for live in lives],
            "gaps": sum(live.gaps for live in lives),
            "last": max((live.last for live in lives), default=0.0),
            "hist": dict(hist),
            "unmatched": unmatched,
        }


class IdleClients:
    """``websockets`` connections that subscribe and then only answer pings."""

    def __init__(self) -> None:
        from websockets.asyncio.client import ClientConnection

        self._conns: list[ClientConnection] = []

    async def __call__(self, command: Command) -> Any:
        from websockets.asyncio.client import connect

        match command:
            case ("connect", str(url), int(n), int(parallel)):
                gate = asyncio.Semaphore(parallel)

                async def one() -> None:
                    async with gate:
                        # Offers permessage-deflate, as browsers do; the server decides.
                        ws = await connect(url, compression="deflate", open_timeout=60)
                        await ws.send(SUBSCRIBE.decode())
                        reply = await ws.recv()
                        if "subscribed" not in str(reply):
                            raise RuntimeError(f"unexpected reply {reply!r}")
                        self._conns.append(ws)

                await asyncio.gather(*(one() for _ in range(n)))
                return len(self._conns)
            case ("close",) | ("exit",):
                await asyncio.gather(*(ws.close() for ws in self._conns), return_exceptions=True)
                self._conns.clear()
                return None
        raise ValueError(f"unknown command {command!r}")


def idle_worker(conn: multiprocessing.connection.Connection) -> None:
    serve_commands(conn, IdleClients)


def live_worker(conn: multiprocessing.connection.Connection) -> None:
    serve_commands(conn, LiveClients)
