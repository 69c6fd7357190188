"""Slow clients against a real uvicorn server: deadlines, the connection cap, early 401s.

Clients here are raw sockets, so a test sends exactly the bytes it means: half a
request head, a head and half its body, a head announcing ten megabytes and no
body. Each waits, bounded, for what the server does; none measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from telehub.api.http_protocol import ClientLimits, default_max_connections
from telehub.config import Settings, load_settings
from telehub.hub import open_hub
from tests.live.support import LiveServer, live_server

WAIT = 10.0  # seconds a test waits, at most, for the server to act

MakeSettings = Callable[..., Settings]


@pytest.fixture
def backend() -> str:
    """The HTTP protocol never touches the database: SQLite is enough."""
    return "sqlite"


@contextlib.asynccontextmanager
async def serving(make_settings: MakeSettings, **overrides: Any) -> AsyncIterator[LiveServer]:
    async with open_hub(make_settings(**overrides)) as hub, live_server(hub) as server:
        yield server


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def raw(server: LiveServer, first: bytes = b"") -> AsyncIterator[Stream]:
    """A plain TCP connection to the server, which has sent ``first``."""
    host, port = server.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        if first:
            writer.write(first)
            await writer.drain()
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader, what: str) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    received = b""
    try:
        async with asyncio.timeout(WAIT):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pytest.fail(f"{what}: the connection is still open after {WAIT} s (got {received!r})")
    except ConnectionResetError:
        pass
    return received


async def response(reader: asyncio.StreamReader, what: str) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names), body (by its Content-Length)."""
    try:
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(
                (name.lower(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            )
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    except TimeoutError:
        pytest.fail(f"{what}: no answer within {WAIT} s")
    return int(lines[0].split()[1]), headers, body


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait, bounded, for ``condition`` (on metrics, which have no event to wait on)."""
    try:
        async with asyncio.timeout(WAIT):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not so after {WAIT} s: {what}")


def closed(server: LiveServer, reason: str) -> float:
    value = server.hub.metrics.registry.get_sample_value(
        "telehub_http_connections_closed_total", {"reason": reason}
    )
    return value or 0.0


def open_connections(server: LiveServer) -> float:
    return server.hub.metrics.registry.get_sample_value("telehub_http_connections") or 0.0


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: hub", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_half_a_request_head_is_answered_408_and_closed_at_the_header_deadline(
    make_settings: MakeSettings,
) -> None:
    async with serving(make_settings, http_header_timeout_seconds=0.5) as server:
        async with raw(server, b"GET /healthz HTTP/1.1\r\nHost: hub\r\n") as (reader, _):
            answer = await until_closed(reader, "half a request head")

        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"content-type: application/problem+json" in answer
        assert b'"type":"urn:telehub:problem:request-timeout"' in answer
        assert closed(server, "header_timeout") == 1


async def test_a_connection_that_sends_nothing_is_closed_unanswered_at_the_header_deadline(
    make_settings: MakeSettings,
) -> None:
    async with serving(make_settings, http_header_timeout_seconds=0.5) as server:
        async with raw(server) as (reader, _):
            assert await until_closed(reader, "a silent connection") == b""

        assert closed(server, "header_timeout") == 1


async def test_a_kept_alive_connection_gets_the_header_deadline_for_its_next_request(
    make_settings: MakeSettings,
) -> None:
    """The keep-alive timeout stops at the first byte of a next request; the header
    deadline then takes over, so a head sent a byte at a time ends too."""
    async with serving(make_settings, http_header_timeout_seconds=0.5) as server:
        async with raw(server, request_head("GET", "/healthz")) as (reader, writer):
            status, _, _ = await response(reader, "a first request")
            assert status == 200
            writer.write(b"GET /heal")
            answer = await until_closed(reader, "half of a second request head")

        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert closed(server, "header_timeout") == 1


READING = b'{"ts": "2025-01-01T00:00:00Z", "values": {"t": 1.5}}'


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/devices/dev-1/telemetry", READING),  # the framework-free fast path
        ("/api/v1/devices", b'{"id": "dev-2", "attributes": {"site": "slow"}}'),  # FastAPI
    ],
)
async def test_a_body_slower_than_its_deadline_is_answered_408_and_nothing_is_kept(
    make_settings: MakeSettings, path: str, body: bytes
) -> None:
    async with serving(make_settings, http_body_timeout_seconds=0.5) as server:
        await server.hub.devices.create(device_id="dev-1", name="dev-1", attributes={})
        head = request_head(
            "POST",
            path,
            f"Authorization: Bearer {server.admin}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        )
        async with raw(server, head + body[:10]) as (reader, _):
            answer = await until_closed(reader, "half a body")

        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"detail":"the request body did not arrive in time"' in answer
        assert closed(server, "body_timeout") == 1
        assert (await server.hub.telemetry.latest("dev-1")).readings == {}
        async with server.http() as http:
            assert (await http.get("/api/v1/devices/dev-2")).status_code == 404


async def test_healthz_answers_while_more_half_open_connections_than_the_cap_are_held(
    make_settings: MakeSettings,
) -> None:
    """With the cap at 50, 60 sockets each send half a request head and hold on; the
    header deadline is two minutes, so it frees nothing here. /healthz still answers.

    At the cap a new connection takes the place of the one that has waited longest on
    its client (for a head, or the rest of a body); only connections the server is
    working on are never taken. So the 51st to 60th sockets each pushed out the oldest
    one still waiting, and so did /healthz's connection: as soon as its request is in,
    it is no longer waiting on its client and nothing can take its place.
    """
    cap, held = 50, 60
    async with (
        serving(make_settings, http_max_connections=cap, http_header_timeout_seconds=120) as server,
        contextlib.AsyncExitStack() as sockets,
    ):
        streams = [
            await sockets.enter_async_context(raw(server, b"GET /healthz HTTP/1.1\r\nHost: h"))
            for _ in range(held)
        ]
        await eventually(
            lambda: closed(server, "cap_evicted") == held - cap,
            f"{held - cap} of {held} half-open connections evicted at a cap of {cap}",
        )
        assert open_connections(server) == cap

        async with httpx.AsyncClient(base_url=server.base, timeout=WAIT) as client:
            answer = await client.get("/healthz")

        assert answer.status_code == 200, answer.text
        evicted = held - cap + 1
        assert closed(server, "cap_evicted") == evicted
        assert closed(server, "cap_refused") == 0
        for n, (reader, _) in enumerate(streams[:evicted]):
            assert await until_closed(reader, f"socket {n}, among the oldest") == b""
        # /healthz's connection is gone too; the newest half-open sockets are still held.
        await eventually(
            lambda: open_connections(server) == cap - 1,
            f"{cap - 1} half-open connections still held once /healthz's is closed",
        )


async def test_at_the_cap_a_new_connection_is_refused_when_every_other_is_being_served(
    make_settings: MakeSettings,
) -> None:
    """Three SSE streams fill a cap of three: the server is working on each (a
    response under way), so none is taken and a fourth connection is closed at once."""
    async with (
        serving(make_settings, http_max_connections=3) as server,
        server.http() as http,
        contextlib.AsyncExitStack() as streams,
    ):
        feeds = [
            await streams.enter_async_context(http.stream("GET", "/api/v1/events"))
            for _ in range(3)
        ]
        assert [feed.status_code for feed in feeds] == [200, 200, 200]

        async with raw(server, request_head("GET", "/healthz")) as (reader, _):
            assert await until_closed(reader, "a connection over the cap") == b""

        assert closed(server, "cap_refused") == 1
        await feeds[0].aclose()
        await eventually(lambda: open_connections(server) == 2, "a stream closed, two left")
        async with httpx.AsyncClient(base_url=server.base, timeout=WAIT) as client:
            assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/devices/dev-1/telemetry"),
        ("POST", "/api/v1/devices"),
        ("PATCH", "/api/v1/devices/dev-1"),
        ("POST", "/api/v1/commands"),
    ],
)
@pytest.mark.parametrize("expect", [(), ("Expect: 100-continue",)])
async def test_a_write_without_a_token_is_401_before_its_body_is_sent(
    make_settings: MakeSettings, method: str, path: str, expect: tuple[str, ...]
) -> None:
    async with serving(make_settings) as server:
        head = request_head(
            method, path, "Content-Type: application/json", "Content-Length: 10000000", *expect
        )
        async with raw(server, head) as (reader, _):
            status, headers, body = await response(reader, "a head announcing 10 MB")

        assert status == 401, (status, body)  # and not 100 Continue: the body is not wanted
        assert headers["content-type"] == "application/problem+json"
        assert headers["www-authenticate"] == "Bearer"
        problem = orjson.loads(body)
        assert problem["type"] == "urn:telehub:problem:unauthenticated"
        assert problem["instance"] == path


async def test_a_websocket_leaves_the_http_count_and_its_deadlines_once_upgraded(
    make_settings: MakeSettings,
) -> None:
    """A live WebSocket counts against ws_max_connections, not the HTTP cap, and no
    header or body deadline of its upgrade request cuts it later."""
    async with (
        serving(
            make_settings,
            http_max_connections=1,
            http_header_timeout_seconds=0.2,
            http_body_timeout_seconds=0.2,
        ) as server,
        server.ws() as ws,
    ):
        await ws.send(orjson.dumps({"op": "ping", "id": "p1"}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "pong"
        assert open_connections(server) == 0
        await asyncio.sleep(0.5)  # past both deadlines
        async with httpx.AsyncClient(base_url=server.base, timeout=WAIT) as client:
            assert (await client.get("/healthz")).status_code == 200  # the cap of 1 is free
        await ws.send(orjson.dumps({"op": "ping", "id": "p2"}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "pong"
        assert closed(server, "header_timeout") + closed(server, "body_timeout") == 0


def test_the_default_cap_is_half_the_open_file_limit_and_at_most_10000() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_connections() == min(10_000, soft // 2)
    assert ClientLimits.from_settings(load_settings(http_max_connections=7)).max_connections == 7
