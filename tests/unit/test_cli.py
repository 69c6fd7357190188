"""The CLI as a script would use it: clean stdout, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telehub.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TELEHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELEHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")


def test_db_upgrade_creates_the_schema() -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


def test_token_create_prints_only_the_token() -> None:
    result = runner.invoke(app, ["token", "create", "--scope", "admin", "--name", "ci"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("tha_")
    listed = runner.invoke(app, ["token", "list"])
    assert "ci" in listed.stdout
    assert "admin" in listed.stdout
    assert result.stdout.strip() not in listed.stdout


def test_token_create_refuses_an_unknown_scope() -> None:
    result = runner.invoke(app, ["token", "create", "--scope", "root"])
    assert result.exit_code == 2


def test_device_create_prints_json_with_the_token_and_list_shows_it() -> None:
    result = runner.invoke(
        app, ["device", "create", "--id", "pump-7", "--name", "Pump 7", "--attr", "site=north"]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["id"] == "pump-7"
    assert created["token"].startswith("thd_")
    listed = runner.invoke(app, ["device", "list"])
    assert "pump-7" in listed.stdout
    assert "never" in listed.stdout


def test_device_create_twice_is_a_one_line_error() -> None:
    assert runner.invoke(app, ["device", "create", "--id", "dup"]).exit_code == 0
    again = runner.invoke(app, ["device", "create", "--id", "dup"])
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert "Traceback" not in again.output


@pytest.mark.parametrize("args", [["--id", "Bad Id"], ["--attr", "novalue"]])
def test_device_create_refuses_bad_flags(args: list[str]) -> None:
    result = runner.invoke(app, ["device", "create", *args])
    assert result.exit_code == 2


def test_token_delete_of_unknown_id_fails() -> None:
    result = runner.invoke(app, ["token", "delete", "nope"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_invalid_configuration_is_reported_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEHUB_DATABASE_URL", "mysql://nope")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
    assert "database_url" in result.stderr
