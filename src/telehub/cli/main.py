"""The ``telehub`` command: a thin typer app; each group lives in commands/."""

from __future__ import annotations

import typer

from telehub.cli.commands import (
    db,
    grpc_server,
    ingest,
    live,
    login,
    mqtt,
    remote_commands,
    remote_devices,
    remote_rejected,
    remote_telemetry,
    serve,
    tokens,
)
from telehub.sim.cli import simulate_command

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
app.command(name="simulate")(simulate_command)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(mqtt.app, name="mqtt")
# Through the API of a running server (remote.py: --url, --token, --json, errors).
app.command()(login.login)
app.add_typer(remote_devices.app, name="devices")
app.command()(remote_telemetry.send)
app.command()(remote_telemetry.query)
app.command()(remote_telemetry.latest)
app.add_typer(remote_commands.app, name="command")
app.command()(remote_rejected.rejected)


def main() -> None:
    app()
