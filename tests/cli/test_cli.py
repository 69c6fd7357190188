"""The CLI as a script would use it: clean stdout, exit codes, one-line errors."""

from __future__ import annotations

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


def test_token_delete_of_unknown_id_fails() -> None:
    result = runner.invoke(app, ["token", "delete", "nope"])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_invalid_configuration_is_reported_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEHUB_DATABASE_URL", "mysql://nope")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
    assert "database_url" in result.stderr
