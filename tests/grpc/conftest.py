"""A real gRPC server on a free loopback port, on a real hub (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from telehub.client.grpc_calls import GrpcError
from telehub.client.grpc_client import AsyncGrpcClient, GrpcClient
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.grpc.server import grpc_running
from telehub.hub import Hub, open_hub

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class GrpcHub:
    hub: Hub
    target: str
    admin: str

    async def token(self, scope: Scope) -> str:
        _, secret = await self.hub.tokens.create(name=f"grpc-{scope.value}", scope=scope)
        return secret

    async def device(self, device_id: str = "dev-1", **attributes: object) -> str:
        """Create a device; return its token."""
        _, secret = await self.hub.devices.create(
            device_id=device_id, name=None, attributes=dict(attributes)
        )
        return secret

    def client(self, token: str | None = None, **kwargs: object) -> AsyncGrpcClient:
        """An async client, as the admin unless another token is given."""
        return AsyncGrpcClient(self.target, token=token or self.admin, **kwargs)  # type: ignore[arg-type]

    def sync_client(self, token: str | None = None) -> GrpcClient:
        """A blocking client: call it from a thread (the server runs on this loop)."""
        return GrpcClient(self.target, token=token or self.admin)

    async def stored(self, metric: str, device_id: str = "dev-1") -> list[tuple[float, float]]:
        """Raw readings of one metric around T0, as (seconds after T0, value)."""
        async with self.client() as client:
            points = await client.query(
                device_id, metrics=[metric], start=at(-86_400), end=at(86_400), limit=10_000
            )
        return [((p.ts.ToDatetime(UTC) - T0).total_seconds(), p.value) for p in points]


@contextlib.asynccontextmanager
async def serve_grpc(hub: Hub) -> AsyncIterator[GrpcHub]:
    async with grpc_running(hub, host="127.0.0.1", port=0) as address:
        admin = await hub.tokens.bootstrap()
        assert admin is not None
        yield GrpcHub(hub=hub, target=str(address), admin=admin)


@pytest.fixture
async def grpc_hub(hub: Hub) -> AsyncIterator[GrpcHub]:
    async with serve_grpc(hub) as running:
        yield running


@contextlib.asynccontextmanager
async def grpc_hub_with(
    make_settings: Callable[..., Settings], **overrides: object
) -> AsyncIterator[GrpcHub]:
    """A hub with these settings, serving gRPC (for tests that need special limits)."""
    async with open_hub(make_settings(**overrides)) as hub, serve_grpc(hub) as running:
        yield running


async def refused(call: object, code: grpc.StatusCode) -> GrpcError:
    """Await ``call``; assert it fails with ``code``; return the decoded error."""
    with pytest.raises(GrpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code, caught.value
    return caught.value
