"""A deleted API token ends its WebSockets (close 1008) and SSE streams, however they
were opened (header, subprotocol, ticket, query), on the memory and the Redis bus;
other tokens' feeds go on, and the token opens nothing any more."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from telehub.domain.devices import Scope
from tests.live.sse_support import add_device, flip
from tests.live.support import LiveServer, ping_or_close, receive, send, subscribe
from tests.revocation.support import close_of, sse

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the database plays no part


async def new_ticket(server: LiveServer, token: str) -> str:
    async with server.http() as http:
        answer = await http.post("/api/v1/live/tickets", headers=server.headers(token))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["ticket"])


async def delete_token(server: LiveServer, token_id: str) -> None:
    async with server.http() as http:
        answer = await http.delete(f"/api/v1/tokens/{token_id}")
    assert answer.status_code == 204, answer.text


async def test_deleting_a_token_closes_its_websockets_with_1008(server: LiveServer) -> None:
    token, secret = await server.hub.tokens.create(name="soon-gone", scope=Scope.READ)
    other = await server.token(Scope.READ)
    ticket = await new_ticket(server, secret)
    async with (
        server.ws(secret) as by_header,
        connect(server.ws_url, subprotocols=["telehub.v1", f"bearer.{secret}"]) as idle,
        connect(f"{server.ws_url}?ticket={ticket}") as by_ticket,
        connect(f"{server.ws_url}?token={secret}") as by_query,
        server.ws(other) as bystander,
    ):
        # Subscribed (on the bus), all but one, which has never asked for anything.
        for ws in (by_header, by_ticket, by_query, bystander):
            await subscribe(ws)
        await send(idle, op="ping", id="p")
        assert await receive(idle) == {"type": "pong", "id": "p"}

        await delete_token(server, token.id)

        for ws in (by_header, idle, by_ticket, by_query):
            assert await close_of(ws) == (1008, "credential revoked")
        await send(bystander, op="ping", id="still-here")
        assert await receive(bystander) == {"type": "pong", "id": "still-here"}
    assert await ping_or_close(server.ws_url, additional_headers=server.headers(secret)) == 1008
    revoked = {"transport": "ws"}
    registry = server.hub.metrics.registry
    assert registry.get_sample_value("telehub_sessions_revoked_total", revoked) == 4


async def test_deleting_a_token_ends_its_sse_streams_and_a_resume_is_refused(
    server: LiveServer,
) -> None:
    hub = server.hub
    await add_device(hub, "dev-1")
    token, secret = await hub.tokens.create(name="soon-gone", scope=Scope.READ)
    other = await server.token(Scope.READ)
    ticket = await new_ticket(server, secret)
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        async with (
            sse(http, headers=server.headers(secret)) as by_header,
            sse(http, ticket=ticket) as by_ticket,
            sse(http, headers=server.headers(other)) as bystander,
        ):
            [before] = await flip(hub, "dev-1", 1)
            for stream in (by_header, by_ticket, bystander):
                assert (await stream.event())["id"] == str(before.id)

            await delete_token(server, token.id)

            await by_header.end()
            await by_ticket.end()
            [after] = await flip(hub, "dev-1", 1)
            assert (await bystander.event())["id"] == str(after.id)

        # What a browser's EventSource does next: reconnect with Last-Event-ID.
        resumed = await http.get(
            "/api/v1/events",
            headers=server.headers(secret) | {"Last-Event-ID": str(before.id)},
        )
    assert resumed.status_code == 401, resumed.text
