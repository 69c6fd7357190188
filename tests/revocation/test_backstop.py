"""Where the news of a revocation never arrives, sessions end all the same: a process
on another bus (``telehub token delete`` beside ``telehub serve`` on the memory bus)
is caught by the periodic recheck of live sessions' tokens, and news lost in a Redis
outage by the recheck of every live session's credential once the bus is back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from telehub.client.grpc_calls import GrpcError
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import serve_grpc
from tests.grpc.ingest_support import readings_batch, stored_count
from tests.live.support import live_server, subscribe
from tests.mqtt.support import eventually
from tests.revocation.support import close_of, feed
from tests.services.redis_support import RedisServer, unique_prefix

# Bus news takes a few seconds more here: Redis is reconnected to with a backoff.
AFTER_OUTAGE = 30.0


@pytest.fixture
def bus() -> str:
    return "memory"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_token_deleted_by_a_process_the_bus_does_not_reach_ends_its_sessions(
    make_settings: Callable[..., Settings],
) -> None:
    # Two memory buses: nothing one announces reaches the other. A second's cache,
    # and so a recheck every second.
    settings = make_settings(auth_cache_seconds=1.0)
    async with open_hub(settings) as serving, live_server(serving) as server:
        token, secret = await serving.tokens.create(name="soon-gone", scope=Scope.READ)
        kept = await server.token(Scope.READ)
        async with server.ws(secret) as ws, server.ws(kept) as bystander:
            await subscribe(ws)
            await subscribe(bystander)
            async with open_hub(settings) as cli:
                await cli.tokens.delete(token.id)
            assert await close_of(ws) == (1008, "credential revoked")
            assert not bystander.close_code


@pytest.mark.services
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_news_lost_in_a_redis_outage_is_made_up_by_a_recheck(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        settings = make_settings(
            auth_cache_seconds=3600.0,  # no periodic recheck within the test
            bus_url=redis.url,
            bus_channel_prefix=unique_prefix("revoke"),
        )
        async with (
            open_hub(settings) as serving,
            serve_grpc(serving) as grpc_hub,
            live_server(serving) as server,
        ):
            token, secret = await serving.tokens.create(name="soon-gone", scope=Scope.READ)
            device_token = await grpc_hub.device("dev-1")
            batches: asyncio.Queue[telemetry_pb2.ReadingBatch | None] = asyncio.Queue()
            async with server.ws(secret) as ws, grpc_hub.client(device_token) as gateway:
                await subscribe(ws)
                publishing = asyncio.create_task(gateway.publish(feed(batches)))
                try:
                    batches.put_nowait(readings_batch("dev-1", 5))

                    async def stored() -> bool:
                        return await stored_count(serving, "dev-1") == 5

                    await eventually(stored, what="the first batch")

                    # Another process revokes both while Redis is down, and exits: what
                    # it announced never leaves its outbox.
                    async with open_hub(settings) as other:
                        redis.kill()
                        await other.tokens.delete(token.id)
                        await other.devices.rotate_token("dev-1")
                    redis.start()

                    async with asyncio.timeout(AFTER_OUTAGE):
                        assert await close_of(ws) == (1008, "credential revoked")
                    with pytest.raises(GrpcError) as caught:
                        await asyncio.wait_for(publishing, AFTER_OUTAGE)
                    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
                finally:
                    publishing.cancel()
                    await asyncio.gather(publishing, return_exceptions=True)
    finally:
        redis.kill()
