"""``telehub mqtt``: set-up steps on an external broker (run by server/broker.py)."""

from __future__ import annotations

import typer

app = typer.Typer(help="MQTT broker set-up.", no_args_is_help=True)


@app.command("bridge-login")
def bridge_login() -> None:
    """Create (or reset) the bridges' login and role in Mosquitto's dynamic security.

    Run once per deployment; running bridges with that login reconnect.
    """
    from telehub.cli.server import broker

    broker.bridge_login()
