"""The WebSocket baseline: a bare ``websockets`` server that coalesces as telehub does.

    python bench/_fanout_bare_ws.py --port N [--compression] [--interval 0.025]

Served on uvloop like ``telehub api``, with websockets' default limits and pings
(20 s, as telehub's). A client sends one message (its subscribe), is answered
``{"type":"subscribed","id":"s"}`` and joins the broadcast set. Commands on
stdin, one a line; each answer is one line on stdout:

    clients                      → ``clients N``
    run RATE SECONDS PER_BATCH   → ``done SENT FIRST LAST`` (SENT readings; monotonic
                                   times of the first batch and of the last broadcast)

``run`` makes RATE readings a second in batches of PER_BATCH, as telehub's loader
posts them (a batch = a POST's commit: one device, one timestamp, metrics m0…, and
every reading's value the monotonic time the batch was due, which clients on this
machine share). Each batch is encoded once, as telehub encodes a submission; on each
tick of a clock every connection shares (``--interval``, telehub's frame interval)
the batches made since the last tick go out as ONE frame shaped like telehub's,
``{"type":"readings","id":"s","readings":[{...}, ...]}``, encoded once and sent to
every client with ``websockets.broadcast``: the design telehub uses, with nothing
else (no bus, no storage, no filters). When a tick's work takes longer than the
schedule allows, the run ends late and SENT/(LAST-FIRST) shows the rate reached.
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

FRAME_INTERVAL_S = 0.025  # telehub's default TELEHUB_WS_FRAME_INTERVAL_SECONDS
_clients: set[ServerConnection] = set()


async def _handler(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.send('{"type":"subscribed","id":"s"}')
    _clients.add(ws)
    try:
        await ws.wait_closed()
    finally:
        _clients.discard(ws)


def _batch(seq: int, metrics: list[str], due: float) -> bytes:
    """One batch's readings as comma-joinable JSON (the list's brackets dropped)."""
    ts = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    device = f"bench-{seq % 100:03d}"
    readings = [{"device_id": device, "metric": m, "ts": ts, "value": due} for m in metrics]
    return orjson.dumps(readings)[1:-1]


def _frame(parts: list[bytes]) -> str:
    return b"".join((b'{"type":"readings","id":"s","readings":[', b",".join(parts), b"]}")).decode()


async def _run(rate: float, seconds: float, per_batch: int, interval: float) -> str:
    batch_rate = rate / per_batch
    total = round(batch_rate * seconds)
    metrics = [f"m{k}" for k in range(per_batch)]
    made, first, last = 0, time.monotonic(), 0.0
    pending: list[bytes] = []
    while made < total:
        # Every batch due by now is "committed", then one frame goes out for all of them.
        due = min(total, int((time.monotonic() - first) * batch_rate) + 1)
        while made < due:
            pending.append(_batch(made, metrics, first + made / batch_rate))
            made += 1
        if pending:
            broadcast(_clients, _frame(pending))
            pending = []
            last = time.monotonic()
        now = time.monotonic()
        await asyncio.sleep((now // interval + 1) * interval - now)
    return f"done {made * per_batch} {first!r} {last!r}"


async def _commands(interval: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "clients":
            answer = f"clients {len(_clients)}"
        elif line[0] == "run":
            answer = await _run(float(line[1]), float(line[2]), int(line[3]), interval)
        else:
            answer = f"error unknown command {line[0]!r}"
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()


async def _main(port: int, compression: bool, interval: float) -> None:
    async with serve(_handler, "127.0.0.1", port, compression="deflate" if compression else None):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await _commands(interval)  # until stdin closes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", action="store_true")
    parser.add_argument("--interval", type=float, default=FRAME_INTERVAL_S, help="frame tick, s")
    args = parser.parse_args()
    uvloop.run(_main(args.port, args.compression, args.interval))


if __name__ == "__main__":
    main()
