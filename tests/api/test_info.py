"""``GET /api/v1/info`` says where the hub's listeners are; ``GET /`` leads to the docs."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from telehub import __version__
from telehub.api.app import create_app
from telehub.config import Settings
from telehub.hub import open_hub
from tests.api.conftest import Api


async def _info(settings: Settings, host: str = "telehub") -> dict[str, object]:
    async with open_hub(settings) as hub:
        app = create_app(settings, hub=hub)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
                r = await c.get("/api/v1/info")  # no token: a client asks before it logs in
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_info_gives_the_embedded_brokers_port_and_the_grpc_target(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        mqtt_url="embedded", mqtt_embedded_port=18840, grpc_port=15051, max_body_bytes=4096
    )
    body = await _info(settings)
    assert body["version"] == __version__
    assert body["mqtt"] == {
        "broker": "embedded",
        "urls": ["mqtt://127.0.0.1:18840"],
        "protocol": "3.1.1",
    }
    assert body["grpc"] == {"target": "127.0.0.1:15051"}
    limits = body["limits"]
    assert isinstance(limits, dict)
    assert limits["max_body_bytes"] == 4096
    assert limits["max_batch_readings"] == settings.max_batch_readings


async def test_a_listener_on_every_address_is_named_by_the_host_the_client_used(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        mqtt_url="embedded", mqtt_embedded_host="0.0.0.0", mqtt_embedded_port=1885,
        grpc_host="::", grpc_port=50052,
    )  # fmt: skip
    body = await _info(settings, host="hub.example")
    assert body["mqtt"] == {
        "broker": "embedded",
        "urls": ["mqtt://hub.example:1885"],
        "protocol": "3.1.1",
    }
    assert body["grpc"] == {"target": "hub.example:50052"}


async def test_an_external_broker_is_given_without_its_login(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(mqtt_url="mqtts://bridge:secret@broker.example")
    body = await _info(settings)
    assert body["mqtt"] == {
        "broker": "external",
        "urls": ["mqtts://broker.example:8883"],
        "protocol": "3.1.1, 5",
    }


async def test_the_root_redirects_to_the_docs(api: Api) -> None:
    r = await api.client.get("/")
    assert r.status_code == 307
    assert r.headers["location"] == "/docs"
    docs = await api.client.get(r.headers["location"])
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


async def test_info_is_in_the_openapi_schema(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "/api/v1/info" in schema["paths"]
    assert "/" not in schema["paths"]
