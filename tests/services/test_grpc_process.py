"""``telehub grpc`` as a real process: set up by the CLI, configured by flags, stopped by SIGTERM.

As an operator runs it: ``telehub db upgrade``, a token from ``telehub token
create``, then the server alone on its port (one of N behind an L7 balancer).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telehub.client.grpc_client import GrpcClient, GrpcError
from telehub.config import load_settings
from telehub.hub import open_hub
from tests.services.server_process import ROOT, STARTUP_SECONDS, TELEHUB, free_port

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def environment(database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database after `telehub db upgrade`, made once and copied for each test."""
    database = tmp_path_factory.mktemp("migrated") / "telehub.db"
    output(telehub(environment(database), "db", "upgrade"))
    return database


@pytest.fixture
def env(migrated: Path, tmp_path: Path) -> dict[str, str]:
    return environment(Path(shutil.copy(migrated, tmp_path / "telehub.db")))


def telehub(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start a `telehub` command (several may run at once)."""
    return subprocess.Popen(
        [TELEHUB, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def output(command: subprocess.Popen[str]) -> str:
    """Wait for a command; assert it succeeded; return what it printed."""
    out, err = command.communicate(timeout=STARTUP_SECONDS)
    assert command.returncode == 0, err
    return out


@pytest.fixture
def grpc_process(
    env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """`telehub grpc` on a free port; killed if the test leaves it running."""
    port = free_port()
    log = tmp_path / "grpc.log"
    # A long grace: a stop with nothing in flight must not wait it out.
    env = {**env, "TELEHUB_GRPC_GRACE_SECONDS": "120"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [TELEHUB, "grpc", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, f"127.0.0.1:{port}", log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _device(database_url: str, device_id: str) -> str:
    async with open_hub(load_settings(database_url=database_url), migrate=False) as hub:
        _, token = await hub.devices.create(device_id=device_id, name=None, attributes={})
    return token


def wait_serving(client: GrpcClient, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"telehub grpc exited with {process.returncode}:\n{log.read_text()}")
        try:
            if client.health("telehub.v1.IngestService") == "SERVING":
                return
        except GrpcError:
            pass  # not listening yet, or the first database check is still to come
        time.sleep(0.1)
    pytest.fail(f"telehub grpc not SERVING after {STARTUP_SECONDS} s:\n{log.read_text()}")


def test_grpc_process_serves_ingest_and_exits_cleanly_on_sigterm(
    env: dict[str, str], grpc_process: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    # The token as an operator scripts it, made while the server starts.
    admin = output(telehub(env, "token", "create", "--scope", "admin", "--name", "grpc")).strip()
    device = asyncio.run(_device(env["TELEHUB_DATABASE_URL"], "dev-g"))
    process, target, log = grpc_process
    with GrpcClient(target, token=device, timeout=10) as client:
        wait_serving(client, process, log)
        assert client.health() == "SERVING"
        summary = client.send_telemetry("dev-g", {"temperature": 21.5, "door": "open"}, ts=T0)
        assert (summary.accepted, summary.state) == (1, 1)
    with GrpcClient(target, token=admin, timeout=10) as client:
        latest = client.latest("dev-g")
        assert [(r.metric, r.value) for r in latest.readings] == [("temperature", 21.5)]

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STARTUP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"telehub grpc did not stop on SIGTERM:\n{log.read_text()}")
    printed = log.read_text()
    assert code == 0, printed
    assert f"telehub gRPC on {target} (health and reflection on)" in printed
    assert "Traceback" not in printed


def test_grpc_on_a_taken_port_prints_one_error_line_naming_the_setting(
    env: dict[str, str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [TELEHUB, "grpc", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    # Informational log lines aside, the operator sees exactly one line: ours.
    lines = [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(lines) == 1, done.stderr
    error = lines[0]
    assert error.startswith(f"telehub: 127.0.0.1:{port} is already in use"), done.stderr
    assert "TELEHUB_GRPC_PORT" in error
    assert "--grpc-port" in error
