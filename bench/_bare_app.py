"""The single-POST baseline: a bare FastAPI endpoint with telehub's body model.

Served exactly as ``telehub api`` serves (src/telehub/cli/commands/serve.py):
the same socket set-up (``bind``), ``uvicorn.Server.serve`` run by the CLI's own
``run`` (so the same event loop, uvloop when installed), http="auto" (httptools),
one worker, access log off. No auth, no ingest, no middleware: it parses and
validates the body, then answers 202.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI, status

from telehub.cli.common import run
from telehub.domain.telemetry import TelemetryBody
from telehub.net import bind

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/v1/devices/{device_id}/telemetry", status_code=status.HTTP_202_ACCEPTED)
async def ingest(device_id: str, body: TelemetryBody) -> dict[str, int]:
    return {"accepted": 1, "duplicates": 0, "state": 0}


async def _serve(port: int) -> None:
    sock = bind("127.0.0.1", port, setting="TELEHUB_HTTP_PORT", flag="--port")
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="info", access_log=False, lifespan="on", timeout_graceful_shutdown=10
        )
    )
    await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
