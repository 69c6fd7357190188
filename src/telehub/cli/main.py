"""The ``telehub`` command: a thin typer app; each group lives in commands/."""

from __future__ import annotations

import typer

from telehub.cli.commands import db, devices, grpc_server, ingest, live, mqtt, serve, tokens

app = typer.Typer(
    help="telehub: self-hosted IoT telemetry and device-control hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve.serve)
app.command()(serve.api)
app.command()(ingest.ingest)
app.command(name="grpc")(grpc_server.grpc)
app.command()(live.tail)
app.command()(live.events)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(devices.app, name="device")
app.add_typer(mqtt.app, name="mqtt")


def main() -> None:
    app()
