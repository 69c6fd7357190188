"""``telehub serve`` as a real process: every port is checked before anything is
written, and the bootstrap admin token is shown only by a start that came up."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from telehub.config import load_settings
from telehub.hub import open_hub
from tests.services.server_process import STARTUP_SECONDS, TELEHUB, Server, free_port, serve_env

TOKEN_LINE = "bootstrap admin token"
HOW_TO = "telehub token create --scope admin"
NOT_SHOWN = "No admin token was shown yet"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test started; any still running are killed at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def start(env: dict[str, str], log: Path, servers: list[Server]) -> Server:
    server = Server(env, log, ("serve",))
    servers.append(server)
    server.wait_healthy()
    return server


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


@pytest.mark.parametrize("which", ["grpc", "mqtt"])
def test_a_start_on_a_taken_port_writes_nothing_and_the_next_shows_the_token(
    env: dict[str, str],
    tmp_path: Path,
    servers: list[Server],
    taken_port: int,
    which: str,
) -> None:
    setting = "TELEHUB_GRPC_PORT" if which == "grpc" else "TELEHUB_MQTT_EMBEDDED_PORT"
    failed = subprocess.run(
        [TELEHUB, "serve", "--port", str(free_port())],
        env=env | {setting: str(taken_port)},
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )

    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"telehub: 127.0.0.1:{taken_port} is already in use; choose another port with "
        f"{setting} or --{which}-port"
        + (
            " (or use the broker that has it: TELEHUB_MQTT_URL=mqtt://host:port)"
            * (which == "mqtt")
        )
    )
    assert "tha_" not in failed.stdout + failed.stderr
    assert TOKEN_LINE not in failed.stdout
    assert not (tmp_path / "telehub.db").exists()  # not even migrated

    server = start(env, tmp_path / "second.log", servers)
    lines = server.wait_for_line(TOKEN_LINE)
    token = lines[next(i for i, line in enumerate(lines) if TOKEN_LINE in line) + 1].strip()
    assert token.startswith("tha_")
    assert any(HOW_TO in line for line in lines)
    listed = httpx.get(
        f"{server.base_url}/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}
    )
    assert [t["scope"] for t in listed.json()] == ["admin"]
    server.terminate()

    again = start(env, tmp_path / "third.log", servers)
    again.terminate()
    assert "tha_" not in again.output()
    assert HOW_TO not in again.output()


async def _bootstrap_without_showing(database_url: str) -> None:
    """What a first start leaves when it fails after making the token, before showing it."""
    async with open_hub(load_settings(database_url=database_url)) as hub:
        assert await hub.tokens.bootstrap() is not None


def test_a_start_after_one_that_never_showed_the_token_says_how_to_make_one(
    env: dict[str, str], tmp_path: Path, servers: list[Server]
) -> None:
    asyncio.run(_bootstrap_without_showing(env["TELEHUB_DATABASE_URL"]))

    server = start(env, tmp_path / "first.log", servers)
    lines = server.wait_for_line(NOT_SHOWN)
    server.terminate()

    [line] = [line for line in lines if NOT_SHOWN in line]
    assert f"`{HOW_TO}`" in line
    assert "tha_" not in server.output()
    made = subprocess.run(
        [TELEHUB, "token", "create", "--scope", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=True,
    )
    assert made.stdout.startswith("tha_")

    again = start(env, tmp_path / "second.log", servers)
    again.terminate()
    assert NOT_SHOWN not in again.output()
