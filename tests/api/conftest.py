"""In-process API fixtures: the real app on a real hub, over httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from telehub.api.app import create_app
from telehub.domain.devices import Scope
from telehub.runtime import Hub


@dataclass
class Api:
    client: httpx.AsyncClient
    hub: Hub
    admin: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def token(self, scope: Scope) -> str:
        _, secret = await self.hub.tokens.create(name=f"test-{scope.value}", scope=scope)
        return secret

    async def device(self, device_id: str = "dev-1", **attributes: object) -> str:
        """Create a device; return its token."""
        r = await self.client.post(
            "/api/v1/devices",
            json={"id": device_id, "attributes": attributes},
            headers=self.auth(self.admin),
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[Api]:
    app = create_app(hub.settings, hub=hub)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://telehub") as client:
            admin = await hub.tokens.bootstrap()
            assert admin is not None
            yield Api(client=client, hub=hub, admin=admin)
