"""What ``telehub token`` runs: API tokens, straight on the database."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from telehub.cli.common import out, run, settings
from telehub.cli.timefmt import iso_time
from telehub.domain.devices import ApiToken, Scope
from telehub.domain.readings import from_micros
from telehub.hub import open_hub


async def _create(name: str, scope: Scope) -> str:
    async with open_hub(settings()) as hub:
        _, secret = await hub.tokens.create(name=name, scope=scope)
        return secret


def create(name: str, scope: Scope) -> None:
    out(run(_create(name, scope)))


async def _list() -> list[ApiToken]:
    async with open_hub(settings()) as hub:
        return await hub.tokens.list()


def list_() -> None:
    table = Table("id", "name", "scope", "created")
    for t in run(_list()):
        table.add_row(t.id, t.name, t.scope.value, iso_time(from_micros(t.created_us)))
    Console().print(table)


async def _delete(token_id: str) -> None:
    async with open_hub(settings()) as hub:
        await hub.tokens.delete(token_id)


def delete(token_id: str) -> None:
    run(_delete(token_id))
    out(f"token {token_id} revoked")
