"""``telehub grpc``: the gRPC server on its own, one of N behind an L7 balancer.

What it runs is in server/grpc_alone.py."""

from __future__ import annotations

from typing import Annotated

import typer

from telehub.cli.options import MetricsPortOpt

GrpcHostOpt = Annotated[
    str | None, typer.Option("--host", help="gRPC address (env TELEHUB_GRPC_HOST)")
]
GrpcPortOpt = Annotated[
    int | None, typer.Option("--grpc-port", "--port", help="gRPC port (env TELEHUB_GRPC_PORT)")
]


def grpc(
    host: GrpcHostOpt = None, port: GrpcPortOpt = None, metrics_port: MetricsPortOpt = None
) -> None:
    """Run only the gRPC server (ingest, query, live, commands, devices)."""
    from telehub.cli.server import grpc_alone

    grpc_alone.grpc(host=host, port=port, metrics_port=metrics_port)
