"""Live push across processes: two real ``telehub api`` processes on PostgreSQL and Redis.

What one process commits (a reading, a command) reaches the WebSocket and SSE
clients of the other through the Redis bus, and an SSE client that moves from
one process to the other with Last-Event-ID gets exactly what it missed. The
event feed's own polling is turned down to a minute, so an event that arrives
within the test's deadlines came over the bus.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import PG_URL, pg_exec, require_service
from tests.live.support import receive_until, subscribe
from tests.services.redis_support import REDIS_URL, require_redis, unique_prefix
from tests.services.server_process import Server, admin_token

pytestmark = pytest.mark.services

WITHIN = 10.0
T = "2026-01-01T00:00:00Z"


@dataclass
class Cluster:
    a: Server
    b: Server
    admin: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def http(self, process: Server) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=process.base_url, headers=self.headers, timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    try:
        asyncio.run(pg_exec("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{PG_URL}: {exc}")
    asyncio.run(require_redis())
    schema = f"live_{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env |= {
        "TELEHUB_DATABASE_URL": PG_URL,
        "TELEHUB_DATABASE_SCHEMA": schema,
        "TELEHUB_BUS_URL": REDIS_URL,
        "TELEHUB_BUS_CHANNEL_PREFIX": unique_prefix("live"),
        "TELEHUB_EVENTS_POLL_SECONDS": "60",
    }
    started: list[Server] = []
    try:
        # Migrated, with a token, in this process: a command started for that costs
        # seconds of imports, and only the API processes are under test.
        admin = admin_token(env, "live-test")
        started = [Server(env, tmp_path / f"api-{name}.log", ("api",)) for name in "ab"]
        for process in started:
            process.wait_healthy()
        yield Cluster(started[0], started[1], admin)
    finally:
        for process in started:
            process.stop()
        asyncio.run(pg_exec(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _device(http: httpx.AsyncClient, device_id: str) -> str:
    created = await http.post("/api/v1/devices", json={"id": device_id})
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


async def _command(http: httpx.AsyncClient, device_id: str) -> str:
    sent = await http.post(f"/api/v1/devices/{device_id}/commands", json={"name": "reboot"})
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


class SseReader:
    """Events of one text/event-stream, one ``{id, event, data}`` dict at a time."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next(self, within: float = WITHIN) -> dict[str, str]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                line = await anext(self._lines)
                if line == "":
                    if "event" in fields or "data" in fields:
                        return fields
                    fields = {}  # the retry: advice, or a keep-alive comment
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value


async def _open_sse(
    http: httpx.AsyncClient, last_event_id: str | None = None
) -> tuple[httpx.Response, SseReader]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    request = http.build_request(
        "GET", "/api/v1/events", params={"types": "commands"}, headers=headers
    )
    response = await http.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    reader = SseReader(response.aiter_lines())
    return response, reader


def _command_id(event: dict[str, str]) -> str:
    assert event["event"] == "commands", event
    body: dict[str, Any] = orjson.loads(event["data"])
    return str(body["command_id"])


async def test_live_push_crosses_processes(cluster: Cluster) -> None:
    async with cluster.http(cluster.a) as on_a, cluster.http(cluster.b) as on_b:
        device_token = await _device(on_a, "dev-1")

        # A reading posted to A reaches a WebSocket client of B.
        ws_url = cluster.b.base_url.replace("http://", "ws://") + "/api/v1/ws"
        async with connect(ws_url, additional_headers=cluster.headers) as ws:
            await subscribe(ws, "all")
            posted = await on_a.post(
                "/api/v1/devices/dev-1/telemetry",
                json={"ts": T, "values": {"t": 21.5}},
                headers={"Authorization": f"Bearer {device_token}"},
            )
            assert posted.status_code == 202, posted.text
            frame, _ = await receive_until(ws, "readings", wait=WITHIN)
        assert frame["id"] == "all"
        assert frame["readings"] == [{"device_id": "dev-1", "metric": "t", "ts": T, "value": 21.5}]

        # A command sent on A shows up on an SSE stream of B.
        response, events_b = await _open_sse(on_b)
        try:
            first = await _command(on_a, "dev-1")
            event = await events_b.next()
            assert _command_id(event) == first
            last_seen = event["id"]
        finally:
            await response.aclose()

        # The client leaves B; what happens meanwhile it gets from A, resuming.
        missed = [await _command(on_a, "dev-1"), await _command(on_b, "dev-1")]
        response, events_a = await _open_sse(on_a, last_event_id=last_seen)
        try:
            resumed = [await events_a.next() for _ in missed]
            assert [_command_id(e) for e in resumed] == missed
            assert [int(e["id"]) for e in resumed] == sorted(int(e["id"]) for e in resumed)
            assert int(resumed[0]["id"]) > int(last_seen)
            # Nothing twice, nothing else: the next event is the next command.
            later = await _command(on_b, "dev-1")
            assert _command_id(await events_a.next()) == later
        finally:
            await response.aclose()
