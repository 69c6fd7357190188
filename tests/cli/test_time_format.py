"""Every time the CLI prints has one form: ISO 8601 in UTC, to the microsecond, with Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telehub.cli.commands import live
from telehub.cli.exit_codes import Exit
from telehub.cli.main import app
from telehub.cli.timefmt import iso_text, iso_time
from tests.cli.conftest import Api, failed, succeeded
from tests.live.support import LiveServer

ONE_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# Anything that looks like a time, in whatever form, to be held to the one form.
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d[^\s,)]*")


def _times(text: str) -> list[str]:
    found = LOOKS_LIKE_A_TIME.findall(text)
    for moment in found:
        assert ONE_FORM.fullmatch(moment), (moment, text)
    return found


@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_the_form() -> None:
    paris = timezone(timedelta(hours=1))
    assert iso_time(datetime(2025, 1, 1, 11, 0, tzinfo=paris)) == "2025-01-01T10:00:00.000000Z"
    assert iso_time(datetime(2025, 1, 1, 10, 0, 0, 1500)) == "2025-01-01T10:00:00.001500Z"
    assert iso_text("2025-01-01T10:00:00Z") == "2025-01-01T10:00:00.000000Z"
    assert iso_text("soon") == "soon"


async def test_every_table_of_the_api_commands(api: Api, server: LiveServer) -> None:
    succeeded(await api("devices", "create", "dev-1"))
    succeeded(await api("send", "dev-1", "t=1.5", "mode=eco", "--ts", "2025-01-01T10:00:00Z"))
    succeeded(await api("send", "dev-1", "t=2"))  # stamped by the server, to the microsecond
    failed(await api("send", "dev-1", "bad metric=1"), Exit.FAILED)  # one rejected input

    shown = {
        "devices list": succeeded(await api("devices", "list")),
        "devices show": succeeded(await api("devices", "show", "dev-1")),
        "latest": succeeded(await api("latest", "dev-1")),
        "query": succeeded(await api("query", "dev-1", "--from", "2025-01-01T00:00:00Z")),
        "query --csv": succeeded(
            await api("query", "dev-1", "--from", "2025-01-01T00:00:00Z", "--csv")
        ),
        "rejected": succeeded(await api("rejected")),
        "command send": succeeded(await api("command", "send", "dev-1", "reboot")),
    }

    counts = {name: len(_times(text)) for name, text in shown.items()}
    assert counts == {
        "devices list": 1,  # last seen
        "devices show": 2,  # last seen, created (presence since: never reported)
        "latest": 2,
        "query": 2,
        "query --csv": 2,
        "rejected": 1,
        "command send": 1,  # expires
    }
    assert "2025-01-01T10:00:00.000000Z" in shown["latest"]


def test_the_token_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    runner = CliRunner()
    assert runner.invoke(app, ["token", "create"]).exit_code == 0
    listed = runner.invoke(app, ["token", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert len(_times(listed.stdout)) == 1


def test_tail_lines(capsys: pytest.CaptureFixture[str]) -> None:
    reading = {"device_id": "dev-1", "metric": "t", "ts": "2025-01-01T10:00:00Z", "value": 1.5}
    live._show_live({"type": "readings", "readings": [reading]}, as_json=False)
    now = datetime.now(UTC).isoformat()
    live._show_live(
        {"type": "presence", "device_id": "dev-1", "online": True, "at": now}, as_json=False
    )
    out = capsys.readouterr().out
    assert len(_times(out)) == 2
    assert out.startswith("2025-01-01T10:00:00.000000Z  dev-1")
