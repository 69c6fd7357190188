"""The top level lists every command without importing it (telehub.cli.lazy): what it
lists must be what the command itself says, and each command must still work."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from telehub.cli.lazy import Lazy, LazyGroup
from telehub.cli.main import COMMANDS, app

runner = CliRunner()


def _group() -> LazyGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    return group


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_the_listed_line_is_the_commands_own_first_paragraph(entry: Lazy) -> None:
    command = _group().loaded(entry.name)
    own = command.short_help or command.help or ""
    first = " ".join(inspect.cleandoc(own).split("\n\n")[0].split())
    assert entry.help == first
    assert command.name == entry.name
    assert command.rich_help_panel == entry.panel


def test_help_lists_every_command_in_its_panel() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert {e.name for e in COMMANDS} <= listed
    assert "Running the hub" in result.stdout
    assert "Talking to a hub" in result.stdout


def test_a_commands_help_shows_its_options() -> None:
    result = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--host", "--port", "--mqtt-port", "--grpc-port"):
        assert option in result.stdout
    assert "--install-completion" not in result.stdout  # that is the top level's


def test_a_mistyped_command_is_a_usage_error_with_a_suggestion() -> None:
    result = runner.invoke(app, ["devics", "list"])
    assert result.exit_code == 2
    assert "Did you mean 'devices'?" in result.stderr
