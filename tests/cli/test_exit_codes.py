"""One exit-code convention for every command (telehub.cli.exit_codes, docs "Exit codes"):
1 refused or not done, 2 usage or configuration, 3 no hub (or database) to reach, 4 the
token. Each class is tried on every command that talks to a hub, and on the server
commands where it can happen."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from telehub.cli.exit_codes import Exit
from telehub.domain.devices import Scope
from telehub.listeners import bind
from tests.cli.conftest import failed, succeeded, telehub
from tests.live.support import LiveServer


@pytest.fixture
def backend() -> str:
    return "sqlite"


# Every command that talks to a hub, with arguments that would work.
API_COMMANDS = [
    ["devices", "list"],
    ["devices", "create", "dev-9"],
    ["devices", "show", "dev-1"],
    ["devices", "update", "dev-1", "--name", "x"],
    ["devices", "delete", "dev-1", "--yes"],
    ["send", "dev-1", "t=1"],
    ["query", "dev-1"],
    ["latest", "dev-1"],
    ["rejected"],
    ["command", "send", "dev-1", "reboot"],
    ["tail"],
    ["events"],
]
NAMES = [" ".join(c[:2]) for c in API_COMMANDS]


def _closed_port_url() -> str:
    sock = bind("127.0.0.1", 0, setting="(test)", flag="(test)")
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("args", API_COMMANDS, ids=NAMES)
async def test_no_token_is_4_before_any_request(args: list[str]) -> None:
    url = _closed_port_url()  # nothing listens: the check is made before any request
    line = failed(await telehub(*args, "--url", url), Exit.AUTH)
    assert line.startswith(f"telehub: no token for {url}: ")


@pytest.mark.parametrize("args", API_COMMANDS, ids=NAMES)
async def test_a_token_the_hub_refuses_is_4(args: list[str], server: LiveServer) -> None:
    line = failed(await telehub(*args, "--url", server.base, "--token", "tha_wrong"), Exit.AUTH)
    assert "401" in line or "1008" in line


@pytest.mark.parametrize("args", API_COMMANDS, ids=NAMES)
async def test_a_token_without_the_scope_is_4(args: list[str], server: LiveServer) -> None:
    _, device_token = await server.hub.devices.create(device_id="dev-2", name=None, attributes={})
    line = failed(await telehub(*args, "--url", server.base, "--token", device_token), Exit.AUTH)
    assert "403" in line or "1008" in line


@pytest.mark.parametrize("args", [*API_COMMANDS, ["login"]], ids=[*NAMES, "login"])
async def test_no_hub_at_the_url_is_3(args: list[str]) -> None:
    url = _closed_port_url()
    line = failed(await telehub(*args, "--url", url, "--token", "x"), Exit.UNREACHABLE)
    assert line == f"telehub: cannot reach {url}: Connection refused"


ON_DEV_1 = [c for c in API_COMMANDS if "dev-1" in c]


@pytest.mark.parametrize("args", ON_DEV_1, ids=[" ".join(c[:2]) for c in ON_DEV_1])
async def test_a_refusal_of_the_request_is_1(args: list[str], server: LiveServer) -> None:
    # dev-1 does not exist: 404.
    line = failed(await telehub(*args, "--url", server.base, "--token", server.admin), Exit.FAILED)
    assert line.startswith("telehub: 404 not-found: ")


@pytest.mark.parametrize("args", [*API_COMMANDS, ["login"]], ids=[*NAMES, "login"])
async def test_a_usage_error_is_2(args: list[str]) -> None:
    result = await telehub(*args, "--no-such-flag")
    assert result.exit_code == Exit.USAGE
    assert "No such option" in result.stderr


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    return env | extra


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """A server command in its own process, as a user runs it."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "telehub"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_server_commands_follow_it_too(tmp_path: Path) -> None:
    env = _server_env(tmp_path)

    assert await _run("token", "delete", "nope", env=env) == (
        Exit.FAILED,
        "telehub: token 'nope' does not exist\n",
    )
    code, err = await _run("token", "create", "--scope", "root", env=env)
    assert code == Exit.USAGE
    code, err = await _run("db", "upgrade", env=env | {"TELEHUB_HTTP_PORT": "http"})
    assert (code, err.split(":")[:2]) == (Exit.USAGE, ["telehub", " invalid configuration"])
    dead = "postgresql+asyncpg://postgres@127.0.0.1:1/telehub"
    code, err = await _run("db", "upgrade", env=env | {"TELEHUB_DATABASE_URL": dead})
    assert code == Exit.UNREACHABLE
    assert err.startswith("telehub: the database is unreachable ("), err


async def test_a_declined_prompt_is_1(server: LiveServer) -> None:
    await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    args = ["--url", server.base, "--token", server.admin]
    declined = await telehub("devices", "delete", "dev-1", *args, input="n\n")
    assert declined.exit_code == Exit.FAILED
    succeeded(await telehub("devices", "show", "dev-1", *args))


async def test_a_read_token_may_read(server: LiveServer) -> None:
    reader = await server.token(Scope.READ)
    succeeded(await telehub("devices", "list", "--url", server.base, "--token", reader))
