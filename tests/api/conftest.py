"""In-process API fixtures: the real app on a real hub, over httpx's ASGI transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from telehub.api.app import create_app
from telehub.domain.devices import Scope
from telehub.hub import Hub

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:telehub:problem:"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW = {"from": "2024-12-31T00:00:00Z", "to": "2025-01-02T00:00:00Z"}  # a day around T0


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def at(seconds: float, **values: object) -> dict[str, Any]:
    """A telemetry message ``seconds`` after T0."""
    return {"ts": iso(T0 + timedelta(seconds=seconds)), "values": values}


def points(body: dict[str, Any], metric: str) -> list[tuple[float, float]]:
    """One series of a query answer as (seconds after T0, value) pairs."""
    return [
        ((datetime.fromisoformat(p["ts"]) - T0).total_seconds(), p["value"])
        for p in body["series"][metric]
    ]


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

    async def ingest(
        self, body: object, token: str | None, device_id: str = "dev-1"
    ) -> httpx.Response:
        headers = self.auth(token) if token else {}
        return await self.client.post(
            f"/api/v1/devices/{device_id}/telemetry", json=body, headers=headers
        )

    async def query(self, device_id: str = "dev-1", **params: Any) -> httpx.Response:
        """GET the device's telemetry (as admin), over WINDOW unless overridden."""
        return await self.client.get(
            f"/api/v1/devices/{device_id}/telemetry",
            params=WINDOW | params,
            headers=self.auth(self.admin),
        )

    async def stored(
        self, metric: str = "temperature", device_id: str = "dev-1"
    ) -> list[tuple[float, float]]:
        """The raw readings of one metric around T0, as (seconds after T0, value)."""
        r = await self.query(device_id, metric=metric)
        assert r.status_code == 200, r.text
        return points(r.json(), metric)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """/metrics as {(sample name, sorted labels): value}."""
        r = await self.client.get("/metrics", headers=self.auth(await self.token(Scope.READ)))
        assert r.status_code == 200, r.text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }

    def problem(self, response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
        """Assert ``response`` is an RFC 9457 problem with this status and type; return its body."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        body: dict[str, Any] = response.json()
        assert body["type"] == PROBLEM_TYPE_PREFIX + slug
        assert body["status"] == status
        assert body["title"]
        assert body["detail"]
        return body

    def invalid(self, response: httpx.Response) -> list[dict[str, str]]:
        """Assert a 422 invalid-input problem; return its ``errors`` (never empty)."""
        errors: list[dict[str, str]] = self.problem(response, 422, "invalid-input")["errors"]
        assert errors
        return errors


@contextlib.asynccontextmanager
async def serve_api(hub: Hub, admin: str | None = None) -> AsyncIterator[Api]:
    """The app on ``hub``, with its lifespan running and an admin token (bootstrapped if none)."""
    app = create_app(hub.settings, hub=hub)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://telehub") as client:
            admin = admin or await hub.tokens.bootstrap()
            assert admin is not None
            yield Api(client=client, hub=hub, admin=admin)


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[Api]:
    async with serve_api(hub) as running:
        yield running


def url(device_id: str = "dev-1", what: str = "telemetry") -> str:
    return f"/api/v1/devices/{device_id}/{what}"
