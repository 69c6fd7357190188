"""``telehub api --workers 2``: each worker process gets the deadlines from the environment.

The workers are spawned with a pickled copy of uvicorn's config, protocol
settings and connection cap included; this checks they arrive.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

from telehub.api.server import uvicorn_config
from telehub.config import load_settings
from telehub.hub import open_hub
from tests.services.server_process import Server

HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n"


async def _migrate(database_url: str) -> None:
    async with open_hub(load_settings(database_url=database_url)):
        pass


def until_closed(sock: socket.socket) -> bytes:
    received = b""
    sock.settimeout(10)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after 10 s (got {received!r})") from None
    except ConnectionResetError:
        pass
    return received


def test_api_workers_cut_off_half_a_request_head_at_the_header_deadline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/telehub.db"
    env["TELEHUB_HTTP_HEADER_TIMEOUT_SECONDS"] = "0.5"
    asyncio.run(_migrate(env["TELEHUB_DATABASE_URL"]))
    server = Server(env, tmp_path / "api.log", ("api", "--workers", "2"))
    try:
        server.wait_healthy()
        # Several at once, so that both workers most likely take some.
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
        for client in clients:
            client.sendall(HALF_HEAD)
        answers = []
        for client in clients:
            with client:
                answers.append(until_closed(client))
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers
        server.terminate()
    finally:
        server.stop()


def test_a_worker_unpickles_its_config_without_importing_the_app() -> None:
    """A worker unpickles its config before it answers its supervisor's health pings
    (within 5 s, or it is killed and started again): the protocol's module must not
    pull in FastAPI, pydantic or SQLAlchemy then; the app loads them afterwards."""
    config = uvicorn_config(
        "telehub.api.app:app_from_env", load_settings(), factory=True, workers=2
    )
    probe = (
        "import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
        "print(sorted(m for m in ('fastapi', 'pydantic', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        input=pickle.dumps(config),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.decode().strip() == "[]", done.stdout
