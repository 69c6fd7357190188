"""CORS: off unless TELEHUB_HTTP_CORS_ORIGINS names origins; then one rule for every HTTP
request, the telemetry POST (answered ahead of FastAPI) included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import ValidationError

from telehub.config import Settings, load_settings
from telehub.hub import open_hub
from tests.api.conftest import Api, serve_api, url

DASHBOARD = "https://dash.example.com"
PATHS = ["/api/v1/devices", url("dev-1", "telemetry")]


def preflight(method: str = "POST") -> dict[str, str]:
    return {
        "Origin": DASHBOARD,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.fixture
async def cors_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    settings = make_settings(http_cors_origins=[DASHBOARD])
    async with open_hub(settings) as hub, serve_api(hub) as api:
        yield api


@pytest.mark.parametrize("path", PATHS)
async def test_without_origins_there_is_no_cors(api: Api, path: str) -> None:
    answer = await api.client.options(path, headers=preflight())
    assert answer.status_code == 405  # no preflight handling: a browser refuses the call
    assert "access-control-allow-origin" not in answer.headers
    got = await api.client.get("/healthz", headers={"Origin": DASHBOARD})
    assert "access-control-allow-origin" not in got.headers


@pytest.mark.parametrize("path", PATHS)
async def test_a_preflight_from_an_allowed_origin_is_answered(cors_api: Api, path: str) -> None:
    answer = await cors_api.client.options(path, headers=preflight())
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


async def test_a_preflight_from_another_origin_is_refused(cors_api: Api) -> None:
    headers = preflight() | {"Origin": "https://evil.example"}
    answer = await cors_api.client.options(PATHS[1], headers=headers)
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


async def test_answers_to_an_allowed_origin_carry_the_headers(cors_api: Api) -> None:
    origin = {"Origin": DASHBOARD}
    created = await cors_api.client.post(
        "/api/v1/devices", json={"id": "dev-1"}, headers=cors_api.auth(cors_api.admin) | origin
    )
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == DASHBOARD
    token = created.json()["token"]
    posted = await cors_api.client.post(
        url(), json={"values": {"t": 1}}, headers=cors_api.auth(token) | origin
    )
    assert posted.status_code == 202, posted.text
    assert posted.headers["access-control-allow-origin"] == DASHBOARD
    refused = await cors_api.client.post(url(), json={"values": {"t": 1}}, headers=origin)
    assert refused.status_code == 401  # errors too: the page can read why
    assert refused.headers["access-control-allow-origin"] == DASHBOARD
    assert "www-authenticate" in refused.headers["access-control-expose-headers"].lower()


def test_origins_come_comma_separated_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEHUB_HTTP_CORS_ORIGINS", f"{DASHBOARD}, http://127.0.0.1:3000")
    assert load_settings().http_cors_origins == [DASHBOARD, "http://127.0.0.1:3000"]
    monkeypatch.setenv("TELEHUB_HTTP_CORS_ORIGINS", f"{DASHBOARD}/")
    with pytest.raises(ValidationError, match="is not an origin"):
        load_settings()
