"""Readiness tells the truth when the database is unreachable."""

from __future__ import annotations

import socket

import httpx

from telehub.api.app import create_app
from telehub.config import load_settings
from telehub.runtime import open_hub


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
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/readyz")
                alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["type"] == "urn:telehub:problem:not-ready"
    assert alive.status_code == 200
