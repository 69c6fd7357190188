"""``telehub db rollup``: one build pass from the command line."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telehub.cli.main import app
from telehub.config import load_settings
from telehub.hub import open_hub
from tests.storage.rollup_support import DATA_START_US, device_with, irregular, progress

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TELEHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELEHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")


async def _seed() -> None:
    async with open_hub(load_settings()) as hub:
        await device_with(hub, irregular(3, start_us=DATA_START_US, count=200))


async def _progress() -> dict[int, int]:
    async with open_hub(load_settings()) as hub:
        return await progress(hub)


def test_db_rollup_runs_one_pass_and_prints_what_it_did() -> None:
    asyncio.run(_seed())
    result = runner.invoke(app, ["db", "rollup"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("rollups: 1 series, ")
    assert " 0 buckets" not in result.stdout
    assert all(done > DATA_START_US for done in asyncio.run(_progress()).values())
    again = runner.invoke(app, ["db", "rollup"])
    assert again.exit_code == 0, again.output
    assert "1 series, 0 buckets written" in again.stdout


def test_db_rollup_on_an_empty_database() -> None:
    result = runner.invoke(app, ["db", "rollup"])
    assert result.exit_code == 0, result.output
    assert "rollups: 0 series, 0 buckets written" in result.stdout
