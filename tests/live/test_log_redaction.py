"""No credential reaches a log line: not a token or ticket in a live feed's URL, not a
bearer header or subprotocol, whether the credential is good, a device's or bogus.

uvicorn logs the URL of every WebSocket it accepts (and, with the access log on,
of every request); at debug level the handshake's headers, at trace level each
scope. The servers here log at trace level with the access log on, so every
line a request can produce is written, and read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_sync

from telehub.config import load_settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.live.support import LiveServer, live_server, log_records, ping_or_close
from tests.services.server_process import Server, serve_env

KINDS = ["admin", "device", "bogus-tha", "bogus"]


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def credential(server: LiveServer, kind: str) -> str:
    if kind == "admin":
        return server.admin
    if kind == "device":
        _, token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
        return token
    if kind == "bogus-tha":
        return "tha_" + secrets.token_urlsafe(32)
    return secrets.token_hex(20)  # nothing like a telehub token: found by its name only


async def open_sse(http: httpx.AsyncClient, url: str, **kwargs: Any) -> int:
    async with http.stream("GET", url, **kwargs) as response:
        if response.status_code == 200:
            async for _ in response.aiter_bytes():
                break  # the retry: line
        return response.status_code


def sse_expected(kind: str) -> int:
    return {"admin": 200, "device": 403}.get(kind, 401)


def written(records: list[logging.LogRecord], capfd: pytest.CaptureFixture[str]) -> str:
    """What the log records say, tracebacks included, and what uvicorn's handlers wrote."""
    captured = capfd.readouterr()
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return "\n".join([*map(formatter.format, records), captured.out, captured.err])


@pytest.mark.parametrize("kind", KINDS)
async def test_no_token_in_a_url_reaches_a_log_line(
    make_settings: Any, capfd: pytest.CaptureFixture[str], kind: str
) -> None:
    async with (
        open_hub(make_settings()) as hub,
        live_server(hub, log_level="trace", access_log=True) as server,
        httpx.AsyncClient(base_url=server.base, timeout=10) as http,
    ):
        secret = await credential(server, kind)
        with log_records() as records:
            ws_codes = [
                await ping_or_close(f"{server.ws_url}?token={secret}"),
                # As the server decodes it: the same parameter.
                await ping_or_close(f"{server.ws_url}?types=x&%74oken={secret}"),
            ]
            sse_code = await open_sse(http, f"/api/v1/events?token={secret}")
    assert ws_codes == [None if kind == "admin" else 1008] * 2
    assert sse_code == sse_expected(kind)
    text = written(records, capfd)
    # The lines were written, with the token in them redacted.
    assert '"WebSocket /api/v1/ws?token=[redacted]" [accepted]' in text
    assert '"WebSocket /api/v1/ws?types=x&%74oken=[redacted]" [accepted]' in text
    assert '"GET /api/v1/events?token=[redacted] HTTP/1.1"' in text
    assert secret not in text


@pytest.mark.parametrize("kind", KINDS)
async def test_no_header_subprotocol_or_ticket_credential_reaches_a_log_line(
    make_settings: Any, capfd: pytest.CaptureFixture[str], kind: str
) -> None:
    async with (
        open_hub(make_settings()) as hub,
        live_server(hub, log_level="trace", access_log=True) as server,
        httpx.AsyncClient(base_url=server.base, timeout=10) as http,
    ):
        secret = await credential(server, kind)
        answer = await http.post("/api/v1/live/tickets", headers=server.headers())
        ticket = answer.json()["ticket"]
        with log_records() as records:
            ws_codes = [
                await ping_or_close(server.ws_url, subprotocols=["telehub.v1", f"bearer.{secret}"]),
                await ping_or_close(server.ws_url, additional_headers=server.headers(secret)),
                await ping_or_close(f"{server.ws_url}?ticket={ticket}"),
            ]
            sse_codes = [
                await open_sse(http, "/api/v1/events", headers=server.headers(secret)),
                await open_sse(http, f"/api/v1/events?ticket={ticket}"),  # spent by now
            ]
    assert ws_codes == [None if kind == "admin" else 1008] * 2 + [None]
    assert sse_codes == [sse_expected(kind), 401]
    text = written(records, capfd)
    assert '"WebSocket /api/v1/ws?ticket=[redacted]" [accepted]' in text
    assert '"GET /api/v1/events?ticket=[redacted] HTTP/1.1" 401' in text
    # The handshake's headers, logged at debug level.
    assert "bearer.[redacted]" in text
    assert "Bearer [redacted]" in text
    assert secret not in text
    assert ticket not in text


@pytest.fixture
def process_env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path) | {"TELEHUB_HTTP_ACCESS_LOG": "true"}


async def _admin(database_url: str) -> str:
    async with open_hub(load_settings(database_url=database_url)) as hub:  # migrates
        _, secret = await hub.tokens.create(name="log-test", scope=Scope.ADMIN)
    return secret


@pytest.mark.parametrize("command", [("serve",), ("api", "--workers", "2")])
def test_the_hubs_own_processes_redact_too(
    process_env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """``telehub serve`` and each worker of ``telehub api --workers 2`` (spawned
    processes that configure their logging themselves) write the same redacted lines."""
    admin = asyncio.run(_admin(process_env["TELEHUB_DATABASE_URL"]))
    bogus = secrets.token_hex(20)
    server = Server(process_env, tmp_path / "server.log", command)
    try:
        server.wait_healthy()
        ws_url = server.base_url.replace("http://", "ws://") + "/api/v1/ws"
        for secret in (admin, bogus) * 2:  # twice: with two workers, each may take one
            with (
                connect_sync(f"{ws_url}?token={secret}") as ws,
                contextlib.suppress(ConnectionClosed),  # the bogus token's 1008
            ):
                ws.send('{"op": "ping"}')
                ws.recv(timeout=10)
            with (
                httpx.Client(base_url=server.base_url, timeout=10) as http,
                http.stream("GET", f"/api/v1/events?token={secret}") as response,
            ):
                assert response.status_code == (200 if secret == admin else 401)
        server.terminate()
    finally:
        server.stop()
    log = server.output()
    assert '"WebSocket /api/v1/ws?token=[redacted]" [accepted]' in log
    assert '"GET /api/v1/events?token=[redacted] HTTP/1.1" 200' in log
    assert admin not in log
    assert bogus not in log
