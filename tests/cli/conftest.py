"""A real server for the CLI, and a way to run the CLI beside it.

The server runs on the test's event loop, so the CLI (blocking requests calls)
runs on a thread; its config file is the test's own, and TELEHUB_URL and
TELEHUB_TOKEN are unset so only what a test passes counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from telehub.cli.exit_codes import Exit
from telehub.cli.main import app
from telehub.hub import Hub
from tests.live.support import LiveServer, live_server

Api = Callable[..., Awaitable[Result]]
_runner = CliRunner()


@pytest.fixture(autouse=True)
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "telehub" / "cli.toml"
    monkeypatch.setenv("TELEHUB_CLI_CONFIG", str(path))
    monkeypatch.delenv("TELEHUB_URL", raising=False)
    monkeypatch.delenv("TELEHUB_TOKEN", raising=False)
    return path


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running


async def telehub(
    *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
) -> Result:
    """``telehub ARGS`` as a user runs it (on a thread: the server needs this loop)."""
    return await asyncio.to_thread(_runner.invoke, app, list(args), input=input, env=env)


@pytest.fixture
def api(server: LiveServer) -> Api:
    """``telehub ARGS --url <server> --token <admin>``."""

    async def run(*args: str, token: str | None = None, input: str | None = None) -> Result:
        return await telehub(
            *args, "--url", server.base, "--token", token or server.admin, input=input
        )

    return run


def succeeded(result: Result) -> str:
    """The stdout of a run that must have worked."""
    assert result.exception is None, (result.exception, result.output)
    assert result.exit_code == 0, result.output
    return result.stdout


def failed(result: Result, code: Exit) -> str:
    """The one stderr line of a run that must have failed cleanly with ``code``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == code, (result.exit_code, result.output)
    line = result.stderr.strip()
    assert line.startswith("telehub: "), line
    assert "\n" not in line, line
    assert "Traceback" not in result.output
    return line
