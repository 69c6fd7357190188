"""Redis for the bus tests: the machine's server, or one of our own that a test may kill.

The machine's Redis (``TELEHUB_TEST_REDIS_URL``, default 127.0.0.1:6379/0) is
shared with other test runs, so every test uses its own channel prefix. A test
that kills Redis starts its own ``redis-server`` on a free port, without
persistence, and kills only that one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import require_service
from tests.services.server_process import free_port

REDIS_URL = os.environ.get("TELEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STARTUP_SECONDS = 10.0


def unique_prefix(name: str = "t") -> str:
    """A channel prefix no other test (or parallel run) uses."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def require_redis(url: str = REDIS_URL) -> None:
    """Skip (or fail under TELEHUB_REQUIRE_SERVICES=1) when Redis does not answer."""
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        require_service("Redis", f"{url}: {exc}")
    finally:
        await client.aclose()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server of our own on a free port; ``kill`` and ``start`` keep the port."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            require_service("redis-server", "the redis-server binary is not installed")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"redis-server did not start:\n{self.log.read_text()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: connections break at once, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)
        self.process = None


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` when it never does."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)
