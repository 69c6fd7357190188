"""``telehub serve`` and ``telehub api --workers 2`` as real processes serving HTTPS, configured
by TELEHUB_HTTP_TLS_CERT_FILE/KEY_FILE as in production, with a certificate of a throwaway CA."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telehub.client import AsyncClient, Client, ConnectionFailed, RetryPolicy
from telehub.config import Settings, load_settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.services.server_process import Server, free_port
from tests.tls_support import TlsFiles

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path, tls: TlsFiles) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env["TELEHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/telehub.db"
    env["TELEHUB_MQTT_EMBEDDED_PORT"] = str(free_port())
    env["TELEHUB_GRPC_PORT"] = str(free_port())
    return env | tls.env()


async def _admin_token(settings: Settings) -> str:
    async with open_hub(settings) as hub:  # migrates: `telehub api` needs the schema
        _, secret = await hub.tokens.create(name="https-test", scope=Scope.ADMIN)
    return secret


@pytest.fixture
def admin(env: dict[str, str]) -> str:
    return asyncio.run(_admin_token(load_settings(database_url=env["TELEHUB_DATABASE_URL"])))


Start = Callable[..., Server]


@pytest.fixture
def start(env: dict[str, str], tls: TlsFiles, tmp_path: Path) -> Iterator[Start]:
    """Start a server, healthy over HTTPS; any left running are killed."""
    servers: list[Server] = []

    def started(*command: str) -> Server:
        server = Server(env, tmp_path / f"server-{len(servers)}.log", command, ca=tls.ca)
        servers.append(server)
        server.wait_healthy()
        return server

    yield started
    for server in servers:
        server.kill()


def _readings(first: int) -> list[dict[str, object]]:
    return [
        {"ts": (T0 + timedelta(seconds=first + i)).isoformat(), "values": {"v": float(i)}}
        for i in range(10)
    ]


async def test_serve_over_https_takes_both_clients_with_the_ca_file(
    start: Start, tls: TlsFiles, admin: str
) -> None:
    server = await asyncio.to_thread(start, "serve")
    assert f"telehub API on https://127.0.0.1:{server.port} (docs: " in server.output()

    def through_sync() -> tuple[int, int]:
        with Client(server.base_url, token=admin, verify=tls.ca) as client:
            client.create_device("dev-s")
            sent = client.send_telemetry("dev-s", _readings(0))
            return sent.accepted, sent.duplicates

    assert await asyncio.to_thread(through_sync) == (10, 0)
    async with AsyncClient(server.base_url, token=admin, verify=tls.ca) as client:
        sent = await client.send_telemetry("dev-s", _readings(5))
        stored = await client.query("dev-s", start=T0, interval="1d", agg="count")
    assert (sent.accepted, sent.duplicates) == (5, 5)
    assert stored.series["v"][0].value == 15

    plain = server.base_url.replace("https://", "http://")
    with (
        Client(plain, token=admin, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(ConnectionFailed),
    ):
        await asyncio.to_thread(client.list_tokens)
    await asyncio.to_thread(server.terminate)


def test_api_workers_serve_https(start: Start, tls: TlsFiles, admin: str) -> None:
    server = start("api", "--workers", "2")
    assert f"telehub API on https://127.0.0.1:{server.port} with 2 processes" in server.output()
    with Client(server.base_url, token=admin, verify=tls.ca) as client:
        client.create_device("dev-w")
        accepted = sum(
            client.send_telemetry("dev-w", _readings(10 * n)).accepted for n in range(10)
        )
        # New connections, so both processes answer some of them.
        for n in range(6):
            with Client(server.base_url, token=admin, verify=tls.ca) as fresh:
                accepted += fresh.send_telemetry("dev-w", _readings(200 + 10 * n)).accepted
        stored = client.query("dev-w", start=T0, interval="1d", agg="count")
    assert accepted == 160
    assert stored.series["v"][0].value == 160
    server.terminate()
