"""``telehub grpc`` with its hub's Prometheus registry on an HTTP port, for the commit figures.

    python bench/_grpc_server.py --port HTTP_PORT    (gRPC on TELEHUB_GRPC_PORT)

The gRPC server alone has no /metrics. This runs the command itself
(``telehub.cli.commands.grpc_server.grpc``: same settings, logging, event loop,
signal handling and schema check) and only wraps ``grpc_running`` so that, once
the gRPC port is serving, prometheus_client's HTTP thread serves the hub's
registry. That thread answers any path, so the harness's ``/healthz`` poll says
"gRPC is up" and its ``/metrics`` scrape reads the batch writer's histograms; it
costs nothing between scrapes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

from prometheus_client import start_http_server

from telehub.cli.commands import grpc_server as command
from telehub.grpc.server import GrpcAddress, grpc_running
from telehub.runtime import Hub


def _with_metrics(
    http_port: int,
) -> Callable[..., contextlib.AbstractAsyncContextManager[GrpcAddress]]:
    @contextlib.asynccontextmanager
    async def running(hub: Hub, **kwargs: Any) -> AsyncIterator[GrpcAddress]:
        async with grpc_running(hub, **kwargs) as address:
            httpd, thread = start_http_server(
                http_port, addr="127.0.0.1", registry=hub.metrics.registry
            )
            try:
                yield address
            finally:
                await asyncio.to_thread(httpd.shutdown)
                httpd.server_close()
                thread.join()

    return running


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="the metrics HTTP port")
    with mock.patch.object(command, "grpc_running", _with_metrics(parser.parse_args().port)):
        command.grpc()  # host and port from TELEHUB_GRPC_HOST / TELEHUB_GRPC_PORT


if __name__ == "__main__":
    main()
