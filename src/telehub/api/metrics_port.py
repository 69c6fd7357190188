"""Prometheus metrics on a port of their own, for processes that serve no HTTP API.

``telehub grpc`` and ``telehub ingest`` run alone in production (N of each);
without this their counters could not be scraped. The API's ``/metrics``
needs a token; this port does not, so it listens on loopback unless told
otherwise (``TELEHUB_METRICS_HOST``), as exporters usually do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator

from prometheus_client import start_http_server

from telehub.core.metrics import Metrics
from telehub.errors import ConfigError


@contextlib.asynccontextmanager
async def metrics_served(metrics: Metrics, *, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve ``metrics`` on ``host:port`` (any path) until exit; nothing when port is None."""
    if port is None:
        yield
        return
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{host}:{port} is already in use; choose another port with "
                "TELEHUB_METRICS_PORT or --metrics-port"
            ) from None
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()
