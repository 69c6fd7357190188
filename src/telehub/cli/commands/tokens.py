"""``telehub token``: API tokens, straight on the database (works before any token exists)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from telehub.cli.common import out, run, settings
from telehub.domain.devices import ApiToken, Scope
from telehub.domain.readings import from_micros
from telehub.hub import open_hub

app = typer.Typer(help="API tokens.", no_args_is_help=True)


async def _create(name: str, scope: Scope) -> str:
    async with open_hub(settings()) as hub:
        _, secret = await hub.tokens.create(name=name, scope=scope)
        return secret


@app.command()
def create(
    scope: Annotated[Scope, typer.Option(help="admin, write or read")] = Scope.READ,
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Make a token and print only the secret, for scripts: TOKEN=$(telehub token create)."""
    out(run(_create(name, scope)))


async def _list() -> list[ApiToken]:
    async with open_hub(settings()) as hub:
        return await hub.tokens.list()


@app.command("list")
def list_() -> None:
    """Show tokens (never their secrets)."""
    table = Table("id", "name", "scope", "created")
    for t in run(_list()):
        table.add_row(t.id, t.name, t.scope.value, from_micros(t.created_us).isoformat())
    Console().print(table)


async def _delete(token_id: str) -> None:
    async with open_hub(settings()) as hub:
        await hub.tokens.delete(token_id)


@app.command()
def delete(token_id: str) -> None:
    """Revoke a token."""
    run(_delete(token_id))
    out(f"token {token_id} revoked")
