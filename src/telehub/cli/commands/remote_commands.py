"""``telehub command``: commands to devices through the API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from telehub.cli.exit_codes import Exit
from telehub.cli.remote import (
    CaFileOpt,
    DeviceArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    connect,
    fail,
    print_json,
    typed_pairs,
    when,
)
from telehub.client.errors import WaitTimedOut
from telehub.domain.commands import MAX_TTL_S, MIN_TTL_S, CommandStatus

if TYPE_CHECKING:
    from telehub.api.command_schemas import CommandOut

app = typer.Typer(help="Commands to devices, through the API.", no_args_is_help=True)

_DEFAULT_WITHIN_S = 60.0


def _print(command: CommandOut, *, as_json: bool) -> None:
    if as_json:
        print_json(command)
        return
    line = f"{command.id} {command.status.value}"
    if command.status.open:
        line += f" (expires {when(command.expires_at)})"
    typer.echo(line)
    if command.result is not None:
        typer.echo(f"result: {json.dumps(command.result)}")


@app.command()
def send(
    device_id: DeviceArg,
    name: Annotated[str, typer.Argument(metavar="NAME", help="the command, e.g. reboot")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", metavar="KEY=VALUE", help="a parameter (numbers, true, {...} typed)"
        ),
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl",
            min=MIN_TTL_S,
            max=MAX_TTL_S,
            metavar="S",
            help="seconds before it expires unsent; default the server's",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until it is acked, failed or expired")
    ] = False,
    within: Annotated[
        float | None,
        typer.Option(
            "--within",
            min=0.1,
            metavar="S",
            help=f"with --wait: give up after this (default {_DEFAULT_WITHIN_S:g})",
        ),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a command for a device; with --wait, exit 1 unless the device acks it."""
    if within is not None and not wait:
        raise typer.BadParameter("only with --wait", param_hint="--within")
    params = typed_pairs(param, "--param")
    with connect(url, token, ca_file) as client:
        command = client.send_command(device_id, name, params, ttl_s=ttl)
        if not wait:
            _print(command, as_json=as_json)
            return
        limit = within if within is not None else _DEFAULT_WITHIN_S
        try:
            command = client.wait_command(device_id, command.id, within=limit)
        except WaitTimedOut:
            command = client.get_command(device_id, command.id)  # it may have just finished
    _print(command, as_json=as_json)
    if command.status.open:
        raise fail(
            f"gave up after {limit:g} s: {command.id} is still {command.status.value}",
            Exit.FAILED,
        )
    if command.status is not CommandStatus.ACKED:
        raise typer.Exit(Exit.FAILED)
