"""A real ``telehub`` server process on a free port, as the process tests start it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from telehub.config import Settings, load_settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.conftest import migrate

ROOT = Path(__file__).resolve().parents[2]
TELEHUB = str(Path(sys.executable).with_name("telehub"))
STARTUP_SECONDS = 30.0


def serve_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``telehub`` process on its own SQLite file and free ports: no
    TELEHUB_* of the caller's, 1883 may be another broker's (Mosquitto's on the CI
    machine), and every test on gRPC's 50051 would collide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/telehub.db"
    env["TELEHUB_MQTT_EMBEDDED_PORT"] = str(free_port())
    env["TELEHUB_GRPC_PORT"] = str(free_port())
    return env


def database_of(env: dict[str, str]) -> Settings:
    """The database settings a ``telehub`` process started with ``env`` uses."""
    schema = env.get("TELEHUB_DATABASE_SCHEMA")
    return load_settings(
        database_url=env["TELEHUB_DATABASE_URL"],
        **({"database_schema": schema} if schema else {}),
    )


def upgrade(env: dict[str, str]) -> None:
    """What ``telehub db upgrade`` does to ``env``'s database, done in this process: a
    fixture that only needs the schema should not pay a ``telehub`` start (seconds of
    imports on 2 shared cores). The command itself is tested in tests/cli/test_cli.py."""
    asyncio.run(migrate(database_of(env)))


async def _admin(settings: Settings, name: str) -> str:
    async with open_hub(settings) as hub:  # migrates
        _, secret = await hub.tokens.create(name=name, scope=Scope.ADMIN)
    return secret


def admin_token(env: dict[str, str], name: str) -> str:
    """Migrate ``env``'s database and make an admin token there, in this process (as
    ``upgrade`` does; ``telehub token create`` is tested in tests/cli/test_cli.py)."""
    return asyncio.run(_admin(database_of(env), name))


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before: the
    kernel may give one free port to two calls in a row, and a server given it for MQTT
    and gRPC refuses to start."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Server:
    """One uvicorn process on a free port; its output goes to a log file.

    With ``ca`` (the env then configures HTTPS) it is reached over https://,
    trusting that CA.
    """

    def __init__(
        self, env: dict[str, str], log: Path, command: tuple[str, ...], *, ca: Path | None = None
    ) -> None:
        self.port = free_port()
        self.base_url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca) if ca is not None else True
        )
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [TELEHUB, *command, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: `api --workers N` forks workers that a kill
                # of the parent alone would leave running, holding the port.
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                answer = httpx.get(f"{self.base_url}/healthz", timeout=1, verify=self.verify)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not healthy after {STARTUP_SECONDS} s:\n{self.output()}")

    def wait_for_line(self, text: str) -> list[str]:
        """The output's lines once one of them holds ``text`` (printed after start-up, say)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            lines = self.output().splitlines()
            if any(text in line for line in lines):
                return lines
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no line with {text!r} in the output:\n{self.output()}")

    def terminate(self) -> None:
        """SIGTERM; assert the process drained, ran the app's shutdown and exited."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"server ignored SIGTERM:\n{self.output()}")
        log = self.output()
        # uvicorn (>= 0.29) shuts down gracefully, then re-raises the signal it
        # caught, so a clean stop by SIGTERM reports -SIGTERM; the log tells a
        # clean stop from a kill.
        assert code in (0, -signal.SIGTERM), log
        assert "Application shutdown complete." in log, log
        assert "Finished server process" in log, log
        assert "Traceback" not in log, log

    def kill(self) -> None:
        """SIGKILL the server and every process it started (its workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, and kill -9 if that is not enough within 10 s (teardown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
