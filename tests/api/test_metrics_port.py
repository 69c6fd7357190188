"""A process without an HTTP API (telehub grpc, telehub ingest) still serves its metrics."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import pytest

from telehub.api.metrics_port import metrics_served
from telehub.core.metrics import Metrics
from telehub.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_the_registry_is_served_while_entered_and_the_port_freed_after() -> None:
    metrics = Metrics()
    metrics.grpc_calls.labels("/telehub.v1.IngestService/Publish", "OK").inc(3)
    port = _free_port()

    async with metrics_served(metrics, host="127.0.0.1", port=port):
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")

    assert (
        'telehub_grpc_calls_total{code="OK",method="/telehub.v1.IngestService/Publish"} 3.0' in text
    )
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))  # closed on exit


async def test_no_port_serves_nothing() -> None:
    async with metrics_served(Metrics(), host="127.0.0.1", port=None):
        pass


async def test_a_taken_port_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="TELEHUB_METRICS_PORT or --metrics-port"):
            async with metrics_served(Metrics(), host="127.0.0.1", port=port):
                pass
