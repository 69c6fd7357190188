"""The SSE baseline: a bare Starlette StreamingResponse per client, fed by the same POSTs.

Phase (4) of ``fanout.py`` (``_fanout_sse.py``) feeds it and telehub the same
paced bulk POSTs; this server makes the events at no cost, so what it shows is
the streaming alone.

    python bench/_fanout_bare_sse.py --port N --data-file PATH

Served as ``telehub api`` serves (its socket set-up ``bind``, uvicorn on uvloop,
httptools, one worker, access log off). ``POST /api/v1/commands`` takes the
same bulk body as telehub's and, for each listed device, makes one event
``id: N / event: commands / data: <the bytes of --data-file>`` (a real telehub
command event, so the same size), encoded once and handed to every connected
client; it answers 202 at once. No auth, no database, no event log: what is
left is the fan-out itself. ``GET /api/v1/events`` streams, like telehub, a
``retry:`` line and then every batch handed to that client since its last
write, joined into one chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from telehub.cli.common import run
from telehub.listeners import bind


class _Client:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ready = asyncio.Event()


class Feed:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.clients: set[_Client] = set()
        self.next_id = 1

    def publish(self, count: int) -> None:
        first, self.next_id = self.next_id, self.next_id + count
        chunk = b"".join(
            b"id: %d\nevent: commands\ndata: %s\n\n" % (first + k, self.data) for k in range(count)
        )
        for client in self.clients:
            client.chunks.append(chunk)
            client.ready.set()

    async def stream(self, client: _Client) -> AsyncIterator[bytes]:
        try:
            yield b"retry: 3000\n\n"
            while True:
                await client.ready.wait()
                client.ready.clear()
                chunk = b"".join(client.chunks)
                client.chunks.clear()
                yield chunk
        finally:
            self.clients.discard(client)


def make_app(feed: Feed) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def events(_: Request) -> Response:
        client = _Client()
        feed.clients.add(client)
        return StreamingResponse(
            feed.stream(client),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def commands(request: Request) -> Response:
        count = len(orjson.loads(await request.body())["devices"])
        feed.publish(count)
        return Response(b'{"queued":%d}' % count, 202, media_type="application/json")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/events", events),
            Route("/api/v1/commands", commands, methods=["POST"]),
        ]
    )


async def _serve(port: int, data: bytes) -> None:
    sock = bind("127.0.0.1", port, setting="TELEHUB_HTTP_PORT", flag="--port")
    config = uvicorn.Config(
        make_app(Feed(data)),
        log_level="info",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-file", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(_serve(args.port, args.data_file.read_bytes().strip()))


if __name__ == "__main__":
    main()
