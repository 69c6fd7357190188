"""A revocation made on one process ends the live sessions on another, through the
Redis bus, and the other stops trusting the credential at once, though it had
verified it and may trust a verified token for an hour. Two hubs in this process
(PostgreSQL and Redis, as two processes behind a proxy), then two real ``telehub
api`` processes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
from websockets.asyncio.client import connect

from telehub.client.grpc_calls import GrpcError
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.errors import Unauthenticated
from telehub.hub import open_hub
from telehub.v1 import telemetry_pb2
from tests.conftest import PG_URL, pg_exec, require_service
from tests.grpc.conftest import serve_grpc
from tests.grpc.ingest_support import readings_batch, stored_count
from tests.live.support import live_server, receive, send, subscribe
from tests.mqtt.support import eventually
from tests.revocation.conftest import CACHE_SECONDS
from tests.revocation.support import WITHIN, close_of, feed, sse, streaming
from tests.services.redis_support import REDIS_URL, require_redis, unique_prefix
from tests.services.server_process import Server, admin_token

pytestmark = pytest.mark.services


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def bus() -> str:
    return "redis"


async def refused_within(check: Callable[[], Awaitable[object]], what: str) -> None:
    """Until ``check`` raises Unauthenticated (or fails after WITHIN s)."""

    async def refused() -> bool:
        try:
            await check()
        except Unauthenticated:
            return True
        return False

    await eventually(refused, within=WITHIN, what=what)


async def test_a_revocation_on_one_hub_ends_the_sessions_of_another(
    configure: Callable[..., Settings],
) -> None:
    settings = configure()
    async with (
        open_hub(settings) as a,
        open_hub(settings) as b,
        serve_grpc(b) as grpc_b,
        live_server(b) as on_b,
    ):
        token, secret = await a.tokens.create(name="soon-gone", scope=Scope.READ)
        kept = await on_b.token(Scope.READ)
        _, device_token = await a.devices.create(device_id="dev-1", name=None, attributes={})
        # B verified both, and trusts each for an hour from now.
        await b.auth.authenticate(secret)
        await b.auth.authenticate(device_token)
        batches: asyncio.Queue[telemetry_pb2.ReadingBatch | None] = asyncio.Queue()
        async with (
            on_b.ws(secret) as ws,
            on_b.ws(kept) as bystander,
            httpx.AsyncClient(base_url=on_b.base, timeout=10) as http,
            sse(http, headers=on_b.headers(secret)) as events,
            grpc_b.client(secret) as reader,
            streaming(b, reader.subscribe()) as live,
            grpc_b.client(device_token) as gateway,
        ):
            await subscribe(ws)
            publishing = asyncio.create_task(gateway.publish(feed(batches)))
            try:
                batches.put_nowait(readings_batch("dev-1", 5))

                async def stored() -> bool:
                    return await stored_count(b, "dev-1") == 5

                await eventually(stored, what="the gateway's first batch")

                await a.tokens.delete(token.id)

                assert await close_of(ws) == (1008, "credential revoked")
                await events.end()
                error = await live.failure()
                assert error.code == grpc.StatusCode.UNAUTHENTICATED, error
                await refused_within(lambda: b.auth.authenticate(secret), "B to refuse the token")

                await a.devices.rotate_token("dev-1")

                with pytest.raises(GrpcError) as caught:
                    await asyncio.wait_for(publishing, WITHIN)
                assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
                await refused_within(
                    lambda: b.auth.authenticate(device_token), "B to refuse the old device token"
                )
                await send(bystander, op="ping", id="p")
                assert await receive(bystander) == {"type": "pong", "id": "p"}
            finally:
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)


# --- two real API processes -------------------------------------------------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    """Two ``telehub api`` processes on one PostgreSQL schema and one Redis bus, each
    trusting a verified token for an hour; and an admin token."""
    try:
        asyncio.run(pg_exec("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{PG_URL}: {exc}")
    asyncio.run(require_redis())
    schema = f"revoke_{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
    env |= {
        "TELEHUB_DATABASE_URL": PG_URL,
        "TELEHUB_DATABASE_SCHEMA": schema,
        "TELEHUB_BUS_URL": REDIS_URL,
        "TELEHUB_BUS_CHANNEL_PREFIX": unique_prefix("revoke"),
        "TELEHUB_AUTH_CACHE_SECONDS": str(CACHE_SECONDS),
    }
    started: list[Server] = []
    try:
        admin = admin_token(env, "revoke-test")  # in this process: no command start to pay
        assert admin.startswith("tha_"), admin
        started = [Server(env, tmp_path / f"api-{name}.log", ("api",)) for name in "ab"]
        for process in started:
            process.wait_healthy()
        yield started[0], started[1], admin
    finally:
        for process in started:
            process.stop()
        asyncio.run(pg_exec(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def test_a_token_deleted_through_one_api_process_ends_its_websocket_on_another(
    processes: tuple[Server, Server, str],
) -> None:
    a, b, admin = processes
    bearer = {"Authorization": f"Bearer {admin}"}
    async with (
        httpx.AsyncClient(base_url=a.base_url, headers=bearer, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=10) as on_b,
    ):
        made = await on_a.post("/api/v1/tokens", json={"name": "soon-gone", "scope": "read"})
        assert made.status_code == 201, made.text
        token_id, secret = made.json()["id"], made.json()["token"]
        device = await on_a.post("/api/v1/devices", json={"id": "dev-1"})
        assert device.status_code == 201, device.text
        device_token = device.json()["token"]

        async def post_to_b(token: str, second: int) -> int:
            answer = await on_b.post(
                "/api/v1/devices/dev-1/telemetry",
                json={"ts": f"2026-01-01T00:00:{second:02d}Z", "values": {"t": 1.0}},
                headers={"Authorization": f"Bearer {token}"},
            )
            return answer.status_code

        assert await post_to_b(device_token, 0) == 202  # B has verified it: cached for an hour

        ws_url = b.base_url.replace("http://", "ws://") + "/api/v1/ws"
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {secret}"}) as ws:
            await subscribe(ws)
            deleted = await on_a.delete(f"/api/v1/tokens/{token_id}")
            assert deleted.status_code == 204, deleted.text
            assert await close_of(ws) == (1008, "credential revoked")

        answer = await on_b.get("/api/v1/devices", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401, answer.text

        rotated = await on_a.post("/api/v1/devices/dev-1/token")
        assert rotated.status_code == 200, rotated.text

        async def old_token_refused() -> bool:
            return await post_to_b(device_token, 1) == 401

        await eventually(old_token_refused, within=WITHIN, what="B to refuse the old device token")
        assert await post_to_b(rotated.json()["token"], 2) == 202
