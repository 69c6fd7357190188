"""The WebSocket baseline: a bare ``websockets`` server and ``websockets.broadcast``.

    python bench/_fanout_bare_ws.py --port N [--compression]

Served on uvloop like ``telehub api``, with websockets' default limits and pings
(20 s, as telehub's). A client sends one message (its subscribe), is answered
``{"type":"subscribed","id":"s"}`` and joins the broadcast set. Commands on
stdin, one a line; each answer is one line on stdout:

    clients                   → ``clients N``
    run RATE SECONDS          → ``done SENT FIRST LAST`` (monotonic times of the
                                first and last broadcast)

``run`` broadcasts RATE messages a second, each one reading shaped like a
telehub frame: ``{"type":"readings","id":"s","readings":[{...}]}``, its value
the monotonic time it is broadcast (clients on this machine share the clock).
Pacing is by a 2 ms tick; when broadcasting takes longer than the schedule
allows, the run ends late and SENT/(LAST-FIRST) shows the rate really reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

TICK_S = 0.002
_clients: set[ServerConnection] = set()


async def _handler(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.send('{"type":"subscribed","id":"s"}')
    _clients.add(ws)
    try:
        await ws.wait_closed()
    finally:
        _clients.discard(ws)


def _message(seq: int) -> str:
    now = time.monotonic()
    reading = {
        "device_id": f"bench-{seq % 100:03d}",
        "metric": f"m{seq % 10}",
        "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "value": now,
    }
    return orjson.dumps({"type": "readings", "id": "s", "readings": [reading]}).decode()


async def _run(rate: float, seconds: float) -> str:
    total = int(rate * seconds)
    sent, first, last = 0, time.monotonic(), 0.0
    while sent < total:
        due = min(total, int((time.monotonic() - first) * rate) + 1)
        while sent < due:
            broadcast(_clients, _message(sent))
            sent += 1
        last = time.monotonic()
        await asyncio.sleep(TICK_S)
    return f"done {sent} {first!r} {last!r}"


async def _commands() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "clients":
            answer = f"clients {len(_clients)}"
        elif line[0] == "run":
            answer = await _run(float(line[1]), float(line[2]))
        else:
            answer = f"error unknown command {line[0]!r}"
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()


async def _main(port: int, compression: bool) -> None:
    async with serve(_handler, "127.0.0.1", port, compression="deflate" if compression else None):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await _commands()  # until stdin closes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", action="store_true")
    args = parser.parse_args()
    uvloop.run(_main(args.port, args.compression))


if __name__ == "__main__":
    main()
