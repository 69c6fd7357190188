"""The framework floor of an idle WebSocket: a bare FastAPI endpoint, served as telehub is.

    python bench/_fanout_bare_asgi.py --port N     (TELEHUB_WS_* settings apply)

The same uvicorn configuration as ``telehub api`` (``telehub.api.server``:
websockets-sansio, pings, compression from Settings; uvloop; ``bind``), and a
FastAPI WebSocket route that accepts, answers the first message with
``{"type":"subscribed","id":"s"}`` and then only waits for the next. No hub,
no auth, no bus subscription: what one connection costs before telehub adds
anything, so the memory phase can say how much of telehub's figure is its own.
"""

from __future__ import annotations

import argparse
import contextlib

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from telehub.api.server import uvicorn_config
from telehub.cli.common import run
from telehub.config import load_settings
from telehub.listeners import bind

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/api/v1/ws")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.receive_text()
        await websocket.send_text('{"type":"subscribed","id":"s"}')
        while True:
            await websocket.receive_text()


async def _serve(port: int) -> None:
    settings = load_settings()
    sock = bind("127.0.0.1", port, setting="TELEHUB_HTTP_PORT", flag="--port")
    await uvicorn.Server(uvicorn_config(app, settings, lifespan="on")).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
