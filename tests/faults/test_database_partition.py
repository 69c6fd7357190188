"""A silent network partition between the hub and PostgreSQL, and its healing.

The proxy between them takes every byte and passes none, and says nothing:
no reset, no refusal, as when a link dies behind a switch. Without deadlines
every request (and /readyz) waited for the whole outage. Now each wait has
one, requests answer 503 with Retry-After, readiness and gRPC health say so,
and once the network heals the hub carries on with new connections, nothing
acknowledged lost.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from telehub.client.grpc_client import AsyncGrpcClient
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.domain.readings import Reading, Telemetry, now_us
from telehub.errors import StorageTimeout
from telehub.grpc.server import grpc_running
from telehub.hub import open_hub
from tests.conftest import PG_URL
from tests.grpc.server_support import all_are, eventually, proxied
from tests.live.support import LiveServer, live_server
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.services)]
)

PROBLEM_JSON = "application/problem+json"
# Short, so the test is quick; the defaults are 5 s, 30 s and 10 s.
DEADLINES = {
    "database_connect_timeout_seconds": 1.0,
    "database_statement_timeout_seconds": 2.0,
    "database_commit_timeout_seconds": 2.0,
}
# Bound of every wait for an answer during the partition: the deadlines, twice over, and
# slack; under the HTTP client's own timeout (10 s), so that a hang fails here, by name.
ANSWER_WITHIN = 8.0
SINGLES = range(10, 18)  # ms of the single readings posted during the partition


@dataclass(frozen=True)
class Readings:
    """Readings of metric ``t``, ``ms`` milliseconds after a start half a minute ago.

    Recent, so that a small batch goes down the writer's one-statement path
    (an old reading, late for rollups, takes the transaction's).
    """

    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=30))

    def one(self, ms: int) -> dict[str, Any]:
        return {"ts": (self.start + timedelta(milliseconds=ms)).isoformat(), "values": {"t": 1.0}}

    def many(self, first: int, count: int) -> list[dict[str, Any]]:
        """``count`` messages: 1,000 and more go down the writer's COPY transaction."""
        return [self.one(ms) for ms in range(first, first + count)]

    async def stored(self, settings: Settings, device_id: str) -> set[int]:
        """The device's readings as ms after the start, read past the proxy."""
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=5)
        try:
            rows = await conn.fetch(
                f'SELECT ts FROM "{settings.database_schema}".readings WHERE device_id = $1',
                device_id,
            )
        finally:
            await conn.close()
        start_us = int(self.start.timestamp() * 1_000_000)
        return {(row["ts"] - start_us) // 1000 for row in rows}


async def answer(request: Coroutine[Any, Any, httpx.Response], what: str) -> httpx.Response:
    """The response to ``request``, which must come within ANSWER_WITHIN."""
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            return await request
    except TimeoutError:
        pytest.fail(f"{what}: no answer within {ANSWER_WITHIN:g} s, the request hangs")


def unavailable(response: httpx.Response, slug: str = "storage-unavailable") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == f"urn:telehub:problem:{slug}"
    assert int(response.headers["Retry-After"]) >= 1


@asynccontextmanager
async def partitionable(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[TcpProxy, LiveServer, AsyncGrpcClient]]:
    """A hub serving HTTP and gRPC whose road to PostgreSQL the test can black-hole."""
    async with (
        proxied(
            make_settings,
            **DEADLINES,
            grpc_health_interval_seconds=0.2,
            auth_cache_seconds=300.0,  # a token checked once is not looked up again
        ) as (proxy, settings),
        open_hub(settings) as hub,
        live_server(hub) as server,
        grpc_running(hub, host="127.0.0.1", port=0) as address,
        AsyncGrpcClient(str(address)) as grpc_client,
    ):
        try:
            yield proxy, server, grpc_client
        finally:
            await proxy.restore()  # so that the hub can stop, whatever the test found


async def test_a_silent_partition_answers_503_then_heals_with_nothing_acknowledged_lost(
    make_settings: Callable[..., Settings],
) -> None:
    readings = Readings()
    async with partitionable(make_settings) as (proxy, server, health), server.http() as http:
        _, device = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
        as_device = {"Authorization": f"Bearer {device}"}
        url = "/api/v1/devices/dev-1/telemetry"
        acknowledged: set[int] = set()
        for ms in range(5):
            posted = await http.post(url, json=readings.one(ms), headers=as_device)
            assert posted.status_code == 202, posted.text
            acknowledged.add(ms)
        posted = await http.post(url, json=readings.many(100, 1000), headers=as_device)
        assert posted.status_code == 202, posted.text
        acknowledged.update(range(100, 1100))
        assert (await http.get("/api/v1/devices/dev-1", headers=server.headers())).is_success
        await eventually(lambda: all_are(health, "SERVING"))
        _, stranger = await server.hub.tokens.create(name="never-seen", scope=Scope.WRITE)

        await proxy.black_hole()
        # Committed together on the writer's connection for small batches, one statement:
        # the batch fails once, at its deadline, not once per submission or per half.
        singles = await asyncio.gather(
            *(
                answer(http.post(url, json=readings.one(ms), headers=as_device), "POST")
                for ms in SINGLES
            )
        )
        bulk, query, unseen, ready = await asyncio.gather(
            # On the writer thread's connection: a COPY transaction.
            answer(http.post(url, json=readings.many(2000, 1000), headers=as_device), "bulk"),
            # Through the pool: a query, and a token the hub must look up.
            answer(http.get("/api/v1/devices/dev-1", headers=server.headers()), "GET device"),
            answer(
                http.post(url, json=readings.one(20), headers=server.headers(stranger)),
                "POST with an unseen token",
            ),
            answer(http.get("/readyz"), "/readyz"),
        )
        for response in (*singles, bulk, query, unseen):
            unavailable(response)
        unavailable(ready, "not-ready")
        await eventually(lambda: all_are(health, "NOT_SERVING"), seconds=ANSWER_WITHIN)

        await proxy.restore()
        await eventually(lambda: all_are(health, "SERVING"), seconds=ANSWER_WITHIN)
        assert (await answer(http.get("/readyz"), "/readyz after healing")).status_code == 200
        # The senders retry what was refused: stored once, whatever the cut-off commits did.
        for body in (*map(readings.one, SINGLES), readings.many(2000, 1000)):
            retried = await answer(http.post(url, json=body, headers=as_device), "retry")
            assert retried.status_code == 202, retried.text
        acknowledged.update({*SINGLES, *range(2000, 3000)})
        assert (await http.get("/api/v1/devices/dev-1", headers=server.headers())).is_success

        assert await readings.stored(server.hub.settings, "dev-1") == acknowledged


async def test_a_hub_stops_during_a_partition(make_settings: Callable[..., Settings]) -> None:
    """Nothing left to write: stopping must not wait for goodbyes that never come."""
    loop = asyncio.get_running_loop()
    async with proxied(make_settings, **DEADLINES) as (proxy, settings):
        try:
            async with asyncio.timeout(None) as deadline, open_hub(settings) as hub:
                await hub.devices.create(device_id="dev-1", name=None, attributes={})
                for count in (1, 1000):  # both of the writer's connections
                    received = now_us()
                    readings = tuple(Reading("dev-1", "t", received - i, 1.0) for i in range(count))
                    await hub.ingestor.submit(Telemetry("dev-1", readings, ()))
                assert (await hub.devices.get("dev-1")).id == "dev-1"  # and a pooled one
                await proxy.black_hole()
                deadline.reschedule(loop.time() + ANSWER_WITHIN)
        except TimeoutError:
            pytest.fail(f"the hub did not stop within {ANSWER_WITHIN:g} s")
        finally:
            await proxy.restore()


async def test_a_statement_past_its_deadline_is_storage_timeout_and_its_connection_replaced(
    make_settings: Callable[..., Settings],
) -> None:
    """What a query meets when its connection goes silent mid-statement, without a proxy."""
    async with open_hub(make_settings(database_statement_timeout_seconds=0.5)) as hub:
        engine = hub.store.engine
        with pytest.raises(StorageTimeout):
            async with asyncio.timeout(ANSWER_WITHIN), engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(3)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert engine.pool.checkedout() == 0


async def test_pooled_connections_notice_a_silent_peer_by_themselves(
    make_settings: Callable[..., Settings],
) -> None:
    """TCP keepalive and TCP_USER_TIMEOUT: the kernel ends a connection whose peer went quiet."""
    settings = make_settings(
        database_connect_timeout_seconds=2.0, database_commit_timeout_seconds=6.0
    )
    async with open_hub(settings) as hub, hub.store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        sock = raw.driver_connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 2
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 2
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 6000


async def test_a_healthy_pooled_connection_is_reused_after_its_ping(
    make_settings: Callable[..., Settings],
) -> None:
    """The checkout ping must pass on a healthy connection: a ping that always failed
    had the pool drop and reopen every connection on every checkout."""
    async with open_hub(make_settings()) as hub:
        engine = hub.store.engine
        pids = []
        for _ in range(3):
            async with engine.connect() as conn:
                pids.append((await conn.execute(text("SELECT pg_backend_pid()"))).scalar())
        assert len(set(pids)) == 1, pids
