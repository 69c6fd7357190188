"""Health, readiness and the API docs: what operators and new users reach first."""

from __future__ import annotations

import re
import socket

import httpx

from telehub.api.app import create_app
from telehub.config import load_settings
from telehub.hub import open_hub
from tests.api.conftest import Api


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readyz_is_503_problem_when_the_database_is_unreachable() -> None:
    settings = load_settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/test"
    )
    async with open_hub(settings, migrate=False) as hub:
        app = create_app(settings, hub=hub)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/readyz")
                alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["type"] == "urn:telehub:problem:not-ready"
    assert alive.status_code == 200


async def test_api_docs_are_served_without_a_cdn(api: Api) -> None:
    """Swagger UI must work on a network with no way out."""
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert (await api.client.get(asset)).status_code == 200, asset
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["paths"]["/api/v1/devices/{device_id}/telemetry"]["post"]["requestBody"]
