"""``telehub device``: register and list devices, straight on the database."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from telehub.cli.common import out, run, settings
from telehub.domain.devices import Device
from telehub.domain.readings import from_micros, is_device_id
from telehub.runtime import open_hub

app = typer.Typer(help="Devices.", no_args_is_help=True)


def _attributes(pairs: list[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--attr")
        attrs[key] = value
    return attrs


async def _create(device_id: str | None, name: str | None, attrs: dict[str, Any]) -> str:
    async with open_hub(settings()) as hub:
        device, token = await hub.devices.create(device_id=device_id, name=name, attributes=attrs)
        return json.dumps({"id": device.id, "name": device.name, "token": token})


@app.command()
def create(
    device_id: Annotated[
        str | None, typer.Option("--id", help="slug; generated if omitted")
    ] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
) -> None:
    """Register a device; prints JSON with its token (shown only now)."""
    if device_id is not None and not is_device_id(device_id):
        raise typer.BadParameter("lowercase letters, digits, - and _ (max 64)", param_hint="--id")
    out(run(_create(device_id, name, _attributes(attr or []))))


async def _list(limit: int) -> list[Device]:
    async with open_hub(settings()) as hub:
        return await hub.devices.page(limit=limit, after=None, attributes={})


@app.command("list")
def list_(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100) -> None:
    """Show devices with their last contact."""
    table = Table("id", "name", "attributes", "last seen")
    for d in run(_list(limit)):
        seen = from_micros(d.last_seen_us).isoformat() if d.last_seen_us else "never"
        table.add_row(d.id, d.name, json.dumps(d.attributes), seen)
    Console().print(table)
