"""``telehub serve`` (everything in one process) and ``telehub api`` (the HTTP API only).

Options and help only: what they run (telehub/cli/server/serving.py) is imported
when they run, so ``--help`` loads no server code.
"""

from __future__ import annotations

from typing import Annotated

import typer

HostOpt = Annotated[str | None, typer.Option("--host", help="HTTP address (env TELEHUB_HTTP_HOST)")]
PortOpt = Annotated[int | None, typer.Option("--port", help="HTTP port (env TELEHUB_HTTP_PORT)")]
MqttPortOpt = Annotated[
    int | None,
    typer.Option("--mqtt-port", help="embedded MQTT broker port (env TELEHUB_MQTT_EMBEDDED_PORT)"),
]
GrpcPortOpt = Annotated[
    int | None, typer.Option("--grpc-port", help="gRPC port (env TELEHUB_GRPC_PORT)")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="processes sharing the port (env TELEHUB_HTTP_WORKERS)"),
]


def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    mqtt_port: MqttPortOpt = None,
    grpc_port: GrpcPortOpt = None,
) -> None:
    """Run telehub: migrate the database, then serve the API, MQTT and gRPC.

    MQTT is the bridge, plus the embedded broker unless TELEHUB_MQTT_URL names one.
    """
    from telehub.cli.server import serving

    serving.serve(host=host, port=port, mqtt_port=mqtt_port, grpc_port=grpc_port)


def api(host: HostOpt = None, port: PortOpt = None, workers: WorkersOpt = None) -> None:
    """Run only the HTTP API (REST, docs, metrics); the schema must already be upgraded."""
    from telehub.cli.server import serving

    serving.api(host=host, port=port, workers=workers)
