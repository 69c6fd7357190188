"""Real brokers and publishers for the MQTT tests.

``Mosquitto`` is our own broker process on a free port with the lossless
production settings (``max_queued_messages 0``, persistence), so a test may
kill and restart it. Publishing goes through the C client ``mosquitto_pub``,
as a device fleet would, not through the library under test.
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import pytest

from tests.conftest import require_service

STARTUP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Mosquitto:
    """A Mosquitto broker of our own; stop/kill/start keep its port and its data."""

    def __init__(self, workdir: Path, *, extra_config: str = "") -> None:
        if shutil.which("mosquitto") is None:
            require_service("Mosquitto", "the mosquitto binary is not installed")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "mosquitto.log"
        self.config = workdir / "mosquitto.conf"
        # `user`: when run as root, mosquitto would otherwise switch to user
        # mosquitto, who cannot write this test's directory.
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "max_queued_messages 0\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            f"user {getpass.getuser()}\n"
            f"{extra_config}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start:\n{self.log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def telemetry_topic(device_id: str) -> str:
    return f"telehub/v1/devices/{device_id}/telemetry"


def publish_lines(
    port: int, topic: str, lines: Iterable[bytes], *, qos: int = 1, timeout: float = 60.0
) -> None:
    """Publish each line as one message with mosquitto_pub -l (a C publisher)."""
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    data = b"".join(line + b"\n" for line in lines)
    result = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos), "-l"],
        input=data,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()


def publish(port: int, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
    """One message of any bytes: mosquitto_pub -s sends all of stdin verbatim."""
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    result = subprocess.run(
        [
            *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic),
            *("-q", str(qos), "-s" if payload else "-n", *(["-r"] if retain else [])),
        ],
        input=payload,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` when it never does."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
