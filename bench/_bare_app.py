"""The single-POST HTTP ceiling: a bare ASGI app on the hub's own uvicorn.

    python bench/_bare_app.py --port N      (TELEHUB_* settings apply, as to the hub)

What a single-reading POST costs in Python before any storage: served exactly as
``telehub api`` serves (cli/commands/serve.py): the same socket set-up (``bind``:
TCP_NODELAY, backlog), ``uvicorn_config`` from the same Settings (the hub's
HTTP protocol class with its deadlines and connection cap, limits, access log),
run by the CLI's own ``run`` (uvloop), the interpreter tuned as in every hub
process (``tune_interpreter``). The app reads the whole body, parses it with
orjson and answers 202 with a body like the hub's; no auth, no validation, no
storage. ``GET /healthz`` answers for the harness.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import orjson
import uvicorn

from telehub.api.server import uvicorn_config
from telehub.cli.common import run
from telehub.config import load_settings
from telehub.listeners import bind
from telehub.process_tuning import tune_interpreter

ACCEPTED = b'{"accepted":1,"duplicates":0,"state":0}'
HEALTHY = b'{"status":"ok"}'
_JSON = (b"content-type", b"application/json")


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/healthz":
        await _answer(send, 200, HEALTHY)
        return
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        await _answer(send, 400, b'{"detail":"bad json"}')
        return
    await _answer(send, 202, ACCEPTED)


async def _serve(port: int) -> None:
    settings = load_settings()
    sock = bind("127.0.0.1", port, setting="TELEHUB_HTTP_PORT", flag="--port")
    tune_interpreter()
    await uvicorn.Server(uvicorn_config(app, settings, lifespan="on")).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
