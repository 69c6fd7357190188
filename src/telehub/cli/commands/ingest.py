"""``telehub ingest``: the MQTT bridge on its own, one of N sharing a subscription.

What it runs is in server/bridge.py."""

from __future__ import annotations

from typing import Annotated

import typer

from telehub.cli.options import MetricsPortOpt


def ingest(
    metrics_port: MetricsPortOpt = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", help="persistent session id, unique per bridge process"),
    ] = None,
    shared_group: Annotated[
        str | None,
        typer.Option("--shared-group", help="split the stream with other bridges ($share)"),
    ] = None,
) -> None:
    """Run the MQTT bridge: store device messages from an external broker (no HTTP)."""
    from telehub.cli.server import bridge

    bridge.ingest(metrics_port=metrics_port, client_id=client_id, shared_group=shared_group)
