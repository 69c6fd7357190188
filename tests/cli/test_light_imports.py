"""``telehub --help`` and the commands that talk to a hub import no server code.

Each case runs ``telehub ARGS`` in a fresh interpreter (the test process has
everything imported already), then lists the server modules it loaded. The API
commands run for real against a live hub.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest

from telehub.cli.main import COMMANDS, RUN, TALK
from tests.live.support import LiveServer

SERVER_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "grpc",
    "amqtt",
    "gmqtt",
    "telehub.api",
    "telehub.storage",
    "telehub.hub",
    "telehub.mqtt",
    "telehub.grpc",
)
# The SDK (telehub.client, which the API commands use) reads the hub's answers into
# the API's own pydantic models: those two modules (and their package, whose
# __init__ is a docstring) are the part of telehub.api it cannot do without. They
# import pydantic and telehub.domain, nothing of the server.
SDK_MODELS = frozenset(
    {
        "telehub.api",
        "telehub.api.schemas",
        "telehub.api.command_schemas",
        "telehub.api.info_schemas",
    }
)

_PROBE = """
import json, sys
from telehub.cli.main import app
try:
    app(sys.argv[2:], prog_name="telehub")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _server_side(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)]


async def _imported(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    out = tmp_path / f"probe-{uuid.uuid4().hex}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROBE,
        str(out),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    found = json.loads(out.read_text())
    return found["code"], _server_side(found["modules"])


SERVER_HELP = [
    ["--help"],
    *([entry.name, "--help"] for entry in COMMANDS if entry.panel == RUN),
    ["db", "upgrade", "--help"],
    ["token", "create", "--help"],
    ["mqtt", "bridge-login", "--help"],
]
API_HELP = [
    *(
        pytest.param(
            [entry.name, "--help"],
            id=f"{entry.name} --help",
        )
        for entry in COMMANDS
        if entry.panel == TALK
    ),
    pytest.param(["devices", "list", "--help"], id="devices list --help"),
    pytest.param(["command", "send", "--help"], id="command send --help"),
]


@pytest.mark.parametrize("args", SERVER_HELP, ids=[" ".join(a) for a in SERVER_HELP])
async def test_help_imports_no_server_module(tmp_path: Path, args: list[str]) -> None:
    code, server_side = await _imported(tmp_path, *args)
    assert code == 0
    assert server_side == []


@pytest.mark.parametrize("args", API_HELP)
async def test_api_command_help_imports_no_server_module(tmp_path: Path, args: list[str]) -> None:
    code, server_side = await _imported(tmp_path, *args)
    assert code == 0
    assert set(server_side) <= SDK_MODELS, server_side


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_the_api_commands_import_no_server_module(tmp_path: Path, server: LiveServer) -> None:
    await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    at = ["--url", server.base, "--token", server.admin]
    runs = [
        ["devices", "list", *at],
        ["devices", "show", "dev-1", *at],
        ["devices", "create", "dev-2", *at],
        ["devices", "update", "dev-2", "--attr", "a=b", *at],
        ["send", "dev-1", "t=1", *at],
        ["query", "dev-1", *at],
        ["latest", "dev-1", *at],
        ["rejected", *at],
        ["command", "send", "dev-1", "reboot", *at],
        ["devices", "delete", "dev-2", "--yes", *at],
        ["login", *at],
    ]
    for args in runs:
        code, server_side = await _imported(tmp_path, *args)
        assert code == 0, args
        assert set(server_side) <= SDK_MODELS, (args, server_side)
