"""Commands whose module is imported only when that command runs.

``telehub --help`` lists every command from what the top level declares (name,
one-line help, panel) without importing any command's module; ``telehub NAME ...``
(its ``--help`` included) imports that one module. So a command that talks to the
API never pays for the server's imports (FastAPI, SQLAlchemy, Alembic, gRPC, the
MQTT brokers), and ``telehub --help`` pays for none.

A server command's own module holds its signature (options, help) with typer only;
what it runs is imported inside its body, so ``telehub serve --help`` stays light too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# typer carries its own click (typer._click); its types are named here only as Any.
Command = Any


@dataclass(frozen=True, slots=True)
class Lazy:
    """A command of the top level: ``target`` is ``module:attribute``, a command
    function or a ``typer.Typer`` (a group); ``help`` is its line in ``telehub --help``
    (a test holds it equal to the first paragraph of the command's own help)."""

    name: str
    target: str
    help: str
    panel: str | None = None

    def load(self) -> Command:
        module, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        command: Command
        if isinstance(found, typer.Typer):
            command = typer.main.get_group(found)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name=self.name)(found)
            command = typer.main.get_command(single)
        command.name = self.name
        if isinstance(command, TyperCommand | TyperGroup):
            command.rich_help_panel = self.panel
        return command


class _Pending(TyperCommand):
    """A command not imported yet: its name and line for the list, nothing else."""

    def __init__(self, entry: Lazy) -> None:
        super().__init__(entry.name, help=entry.help, short_help=entry.help)
        self.entry = entry
        self.rich_help_panel = entry.panel


class LazyGroup(TyperGroup):
    """The top-level group: ``commands`` starts as placeholders, each replaced by the
    real command (its module imported) when it is resolved to run or show its help."""

    entries: tuple[Lazy, ...] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in self.entries:
            self.commands[entry.name] = _Pending(entry)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Command, list[str]]:
        if args:
            pending = self.commands.get(args[0])
            if isinstance(pending, _Pending):
                self.commands[args[0]] = pending.entry.load()
        return super().resolve_command(ctx, args)

    def loaded(self, name: str) -> Command:
        """The real command ``name`` (imported now if it was not yet)."""
        found = self.commands[name]
        if isinstance(found, _Pending):
            found = self.commands[name] = found.entry.load()
        return found


def lazy_group(*entries: Lazy) -> type[LazyGroup]:
    """The group class for ``typer.Typer(cls=...)`` with these commands."""
    return type("TelehubGroup", (LazyGroup,), {"entries": entries})
