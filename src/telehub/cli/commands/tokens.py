"""``telehub token``: API tokens, straight on the database (works before any token exists).

What it runs is in server/tokens.py."""

from __future__ import annotations

from typing import Annotated

import typer

from telehub.domain.devices import Scope

app = typer.Typer(help="API tokens.", no_args_is_help=True)


@app.command()
def create(
    scope: Annotated[Scope, typer.Option(help="admin, write or read")] = Scope.READ,
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Make a token and print only the secret, for scripts: TOKEN=$(telehub token create)."""
    from telehub.cli.server import tokens

    tokens.create(name, scope)


@app.command("list")
def list_() -> None:
    """Show tokens (never their secrets)."""
    from telehub.cli.server import tokens

    tokens.list_()


@app.command()
def delete(token_id: str) -> None:
    """Revoke a token."""
    from telehub.cli.server import tokens

    tokens.delete(token_id)
