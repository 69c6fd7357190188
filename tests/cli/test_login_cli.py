"""``telehub login``, and where the API commands find the server and the token:
flags, then TELEHUB_URL/TELEHUB_TOKEN, then the file login wrote."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from telehub.cli.exit_codes import Exit
from telehub.hub import Hub
from tests.cli.conftest import failed, succeeded, telehub
from tests.live.support import LiveServer


def _saved(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_login_checks_the_token_then_saves_it_for_the_owner_only(
    server: LiveServer, config_file: Path, hub: Hub
) -> None:
    await hub.devices.create(device_id="dev-1", name=None, attributes={})

    saved = succeeded(await telehub("login", "--url", server.base + "/", "--token", server.admin))

    assert saved == f"saved {server.base} to {config_file}\n"
    assert _mode(config_file) == 0o600
    assert _mode(config_file.parent) == 0o700
    assert _saved(config_file) == {"url": server.base, "token": server.admin}
    listed = json.loads(succeeded(await telehub("devices", "list", "--json")))
    assert [d["id"] for d in listed] == ["dev-1"]


async def test_login_asks_for_the_token_when_not_given(
    server: LiveServer, config_file: Path
) -> None:
    result = await telehub("login", "--url", server.base, "--no-check", input="tha_typed\n")
    assert result.exit_code == 0, result.output
    assert "tha_typed" not in result.stdout  # hidden input
    assert _saved(config_file)["token"] == "tha_typed"


async def test_login_with_a_bad_token_saves_nothing(server: LiveServer, config_file: Path) -> None:
    line = failed(await telehub("login", "--url", server.base, "--token", "tha_wrong"), Exit.AUTH)
    assert line.startswith("telehub: 401 unauthenticated: ")
    assert not await asyncio.to_thread(config_file.exists)


async def test_flags_beat_env_which_beats_the_saved_login(server: LiveServer) -> None:
    succeeded(await telehub("login", "--url", server.base, "--token", server.admin))
    bad = {"TELEHUB_TOKEN": "tha_wrong"}

    assert succeeded(await telehub("devices", "list", "--json")) == "[]\n"
    assert failed(await telehub("devices", "list", env=bad), Exit.AUTH).startswith("telehub: 401 ")
    assert succeeded(await telehub("devices", "list", "--token", server.admin, env=bad))
    assert failed(await telehub("devices", "list", "--token", "tha_wrong"), Exit.AUTH).startswith(
        "telehub: 401 "
    )
    dead = {"TELEHUB_URL": "http://127.0.0.1:9"}
    # The saved token is for the saved URL only: TELEHUB_URL moves the command off it.
    assert failed(await telehub("devices", "list", env=dead), Exit.AUTH).startswith(
        "telehub: no token for http://127.0.0.1:9; a login is saved for "
    )
    assert failed(
        await telehub("devices", "list", "--token", "x", env=dead), Exit.UNREACHABLE
    ).startswith("telehub: cannot reach http://127.0.0.1:9: ")
    assert succeeded(await telehub("devices", "list", "--url", server.base, env=dead))


async def test_a_saved_token_goes_only_to_the_url_it_was_saved_with(server: LiveServer) -> None:
    await telehub("login", "--url", server.base, "--token", server.admin, "--no-check")
    other = server.base.replace("127.0.0.1", "localhost")

    for command in (["devices", "list"], ["tail"], ["events"]):
        result = await telehub(*command, "--url", other)

        # No token goes out; the message names the login there is, and how to use it.
        assert failed(result, Exit.AUTH) == (
            f"telehub: no token for {other}; a login is saved for {server.base}, not for "
            f"{other}: use --url {server.base}, or give --token, set TELEHUB_TOKEN or run "
            f"`telehub login --url {other}`"
        )


@pytest.fixture
def broken(config_file: Path) -> Path:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("url = [not toml")
    return config_file


async def test_a_broken_config_file_is_one_line(broken: Path) -> None:
    line = failed(await telehub("devices", "list"), Exit.USAGE)
    assert line.startswith(f"telehub: cannot read {broken}: ")
    # Flags that give both need no file.
    failed_anyway = failed(
        await telehub("devices", "list", "--url", "http://127.0.0.1:9", "--token", "x"),
        Exit.UNREACHABLE,
    )
    assert failed_anyway.startswith("telehub: cannot reach")


async def test_tail_and_events_use_the_saved_login(server: LiveServer) -> None:
    assert "no token for" in failed(await telehub("tail", "--url", server.base), Exit.AUTH)
    _, device_token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    succeeded(await telehub("login", "--url", server.base, "--token", device_token, "--no-check"))

    # The saved token is sent (a device token may not read the live feeds: refused, not missing).
    tail = failed(await telehub("tail"), Exit.AUTH)
    events = failed(await telehub("events"), Exit.AUTH)

    assert "1008" in tail
    assert "403" in events


async def test_simulate_finds_the_server_and_token_from_the_login(
    server: LiveServer, config_file: Path, hub: Hub
) -> None:
    """A real process: simulate installs signal handlers, which typer's runner thread cannot."""
    succeeded(await telehub("login", "--url", server.base, "--token", server.admin))
    argv = ["simulate", "--devices", "2", "--rate", "20", "--duration", "1", "--json"]
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "telehub"),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)

    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["error_total"] == 0
    assert summary["acknowledged"] > 0
    assert await hub.devices.get("sim-1") is not None
