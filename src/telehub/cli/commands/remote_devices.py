"""``telehub devices``: the device registry through the API."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer

from telehub.cli.remote import (
    CaFileOpt,
    DeviceArg,
    JsonOpt,
    NewDeviceArg,
    TokenOpt,
    UrlOpt,
    add_row,
    connect,
    pairs,
    print_json,
    print_table,
    shown,
    table,
    when,
)

if TYPE_CHECKING:
    from telehub.api.schemas import DeviceOut

app = typer.Typer(help="Devices, through the API.", no_args_is_help=True)

_MAX_PAGE = 1000  # the API's largest page


def _online(device: DeviceOut) -> str:
    return {True: "yes", False: "no", None: "unknown"}[device.online]


def _attributes(attributes: dict[str, Any]) -> str:
    return " ".join(f"{k}={shown(v)}" for k, v in sorted(attributes.items()))


def _show(device: DeviceOut) -> None:
    rows = table("field", "value")
    rows.show_header = False
    for field, value in (
        ("id", device.id),
        ("name", device.name),
        ("online", _online(device)),
        ("last seen", when(device.last_seen)),
        ("presence since", when(device.presence_changed_at, "-")),
        ("created", when(device.created_at)),
        ("attributes", _attributes(device.attributes)),
    ):
        add_row(rows, field, value)
    print_table(rows)


@app.command("list")
def list_(
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", metavar="KEY=VALUE", help="only devices with this attribute"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List devices (all of them, a page at a time, unless --limit)."""
    wanted = pairs(attr, "--attr")
    page_size = min(limit or 100, _MAX_PAGE)
    with connect(url, token, ca_file) as client:
        found = list(
            islice(client.list_devices(attributes=wanted or None, page_size=page_size), limit)
        )
    if as_json:
        print_json(found)
        return
    rows = table("id", "name", "online", "last seen", "attributes")
    for d in found:
        add_row(rows, d.id, d.name, _online(d), when(d.last_seen), _attributes(d.attributes))
    print_table(rows)


@app.command()
def create(
    device_id: NewDeviceArg = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    attr: Annotated[
        list[str] | None, typer.Option("--attr", metavar="KEY=VALUE", help="repeatable")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a device and print its token, which is shown only this once."""
    attributes = pairs(attr, "--attr")
    with connect(url, token, ca_file) as client:
        created = client.create_device(device_id, name=name, attributes=attributes)
    if as_json:
        print_json(created)
        return
    typer.echo(f"created device {created.id}")
    typer.echo(f"token: {created.token}")
    typer.echo("(the token is shown only this once: store it now)", err=True)


@app.command()
def show(
    device_id: DeviceArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One device: presence, last contact, attributes."""
    with connect(url, token, ca_file) as client:
        device = client.get_device(device_id)
    if as_json:
        print_json(device)
    else:
        _show(device)


@app.command()
def update(
    device_id: DeviceArg,
    name: Annotated[str | None, typer.Option(help="new display name")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr", metavar="KEY=VALUE", help="set this attribute (others stay); repeatable"
        ),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a device or set some of its attributes."""
    changes = pairs(attr, "--attr")
    if name is None and not changes:
        raise typer.BadParameter("nothing to change: give --name or --attr")
    with connect(url, token, ca_file) as client:
        merged = None
        if changes:
            # The API replaces the whole attribute set; --attr changes only the named keys.
            merged = client.get_device(device_id).attributes | changes
        device = client.update_device(device_id, name=name, attributes=merged)
    if as_json:
        print_json(device)
    else:
        _show(device)


@app.command()
def delete(
    device_id: DeviceArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a device with its readings and state."""
    if not yes:
        typer.confirm(
            f"Delete device {device_id} with all its readings and state?", abort=True, err=True
        )
    with connect(url, token, ca_file) as client:
        client.delete_device(device_id)
    if as_json:
        print_json({"id": device_id, "deleted": True})
    else:
        typer.echo(f"deleted device {device_id}")
