"""How a browser authenticates a live feed without its token in the URL: a single-use
ticket (WebSocket and SSE) and the ``bearer.<token>`` subprotocol (WebSocket).

Tickets live in the database, so these run on SQLite and PostgreSQL (memory bus).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.live.support import LiveServer, live_server, ping_or_close, receive, send

TICKETS = "/api/v1/live/tickets"
EVENTS = "/api/v1/events"


@pytest.fixture
def bus() -> str:
    return "memory"  # tickets are kept in the database; the bus plays no part


async def new_ticket(server: LiveServer, token: str | None = None) -> str:
    async with server.http() as http:
        answer = await http.post(TICKETS, headers=server.headers(token))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["ticket"])


async def sse_status(server: LiveServer, url: str, **kwargs: Any) -> int:
    """Open the SSE feed without credentials of its own; the status it answers."""
    async with (
        httpx.AsyncClient(base_url=server.base, timeout=10) as http,
        http.stream("GET", url, **kwargs) as response,
    ):
        if response.status_code == 200:
            async for line in response.aiter_lines():
                assert line == "retry: 3000"
                break
        else:
            assert response.headers["content-type"] == "application/problem+json"
        return response.status_code


# --- tickets -----------------------------------------------------------------------------


async def test_a_ticket_opens_the_websocket_once(server: LiveServer) -> None:
    async with server.http() as http:
        answer = await http.post(TICKETS)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body.keys() == {"ticket", "expires_in"}
    assert body["expires_in"] == 30
    ticket = body["ticket"]
    assert ticket.startswith("tht_")
    assert server.admin not in ticket

    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") is None
    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") == 1008


async def test_a_ticket_opens_an_sse_stream_once_and_is_spent_by_either_feed(
    server: LiveServer,
) -> None:
    ticket = await new_ticket(server)
    assert await sse_status(server, f"{EVENTS}?ticket={ticket}") == 200
    assert await sse_status(server, f"{EVENTS}?ticket={ticket}") == 401
    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") == 1008

    ticket = await new_ticket(server)
    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") is None
    assert await sse_status(server, f"{EVENTS}?ticket={ticket}") == 401


async def test_an_expired_ticket_is_refused(make_settings: Any) -> None:
    settings = make_settings(live_ticket_seconds=1)
    async with open_hub(settings) as hub, live_server(hub) as server:
        for_ws, for_sse = await new_ticket(server), await new_ticket(server)
        await asyncio.sleep(1.5)
        assert await ping_or_close(f"{server.ws_url}?ticket={for_ws}") == 1008
        assert await sse_status(server, f"{EVENTS}?ticket={for_sse}") == 401


async def test_a_ticket_carries_its_tokens_scope_and_no_more(server: LiveServer) -> None:
    read = await new_ticket(server, await server.token(Scope.READ))
    async with connect(f"{server.ws_url}?ticket={read}") as ws:
        await send(ws, op="command", id="c", device_id="nope", name="reboot")
        refused = await receive(ws)
    admin = await new_ticket(server)
    async with connect(f"{server.ws_url}?ticket={admin}") as ws:
        await send(ws, op="command", id="c", device_id="nope", name="reboot")
        allowed = await receive(ws)  # past the scope check: there is no such device
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    assert (allowed["type"], allowed["code"]) == ("error", "not-found")


async def test_only_a_read_token_gets_a_ticket(server: LiveServer) -> None:
    _, device_token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        anonymous = await http.post(TICKETS)
        device = await http.post(TICKETS, headers=server.headers(device_token))
        bogus = await http.post(TICKETS, headers=server.headers("tha_nope"))
    assert [anonymous.status_code, device.status_code, bogus.status_code] == [401, 403, 401]


async def test_a_ticket_is_no_bearer_token(server: LiveServer) -> None:
    ticket = await new_ticket(server)
    bearer = server.headers(ticket)
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        rest = await http.get("/api/v1/devices", headers=bearer)
        another = await http.post(TICKETS, headers=bearer)
    assert [rest.status_code, another.status_code] == [401, 401]
    assert await sse_status(server, EVENTS, headers=bearer) == 401
    assert await sse_status(server, f"{EVENTS}?token={ticket}") == 401
    assert await ping_or_close(f"{server.ws_url}?token={ticket}") == 1008
    assert await ping_or_close(server.ws_url, additional_headers=bearer) == 1008
    # None of that spent it: it is still good, once, as a ticket.
    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") is None


async def test_revoking_a_token_revokes_its_tickets(server: LiveServer) -> None:
    token, secret = await server.hub.tokens.create(name="soon-gone", scope=Scope.READ)
    ticket = await new_ticket(server, secret)
    async with server.http() as http:
        deleted = await http.delete(f"/api/v1/tokens/{token.id}")
    assert deleted.status_code == 204
    assert await ping_or_close(f"{server.ws_url}?ticket={ticket}") == 1008


async def test_a_ticket_from_one_process_is_taken_once_by_any(make_settings: Any) -> None:
    """Two hubs on one database, as two API processes behind a proxy: a ticket either
    issued is good on the other, and of two concurrent uses exactly one gets in."""
    settings = make_settings()
    async with (
        open_hub(settings) as one,
        open_hub(settings) as other,
        live_server(one) as first,
        live_server(other) as second,
    ):
        ticket = await new_ticket(first)
        assert await ping_or_close(f"{second.ws_url}?ticket={ticket}") is None
        assert await ping_or_close(f"{first.ws_url}?ticket={ticket}") == 1008

        ticket = await new_ticket(second)
        both = await asyncio.gather(
            sse_status(first, f"{EVENTS}?ticket={ticket}"),
            sse_status(second, f"{EVENTS}?ticket={ticket}"),
        )
    assert sorted(both) == [200, 401]


# --- the subprotocol -----------------------------------------------------------------------


async def test_the_token_in_a_subprotocol_is_never_echoed(server: LiveServer) -> None:
    token = await server.token(Scope.READ)
    async with connect(server.ws_url, subprotocols=["telehub.v1", f"bearer.{token}"]) as ws:
        await send(ws, op="ping", id="p")
        assert await receive(ws) == {"type": "pong", "id": "p"}
        assert ws.subprotocol == "telehub.v1"
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["telehub.v1"]
        assert token not in str(ws.response.headers)


async def test_a_bad_token_in_a_subprotocol_is_closed_with_1008(server: LiveServer) -> None:
    _, device_token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    for token in ("tha_nope", device_token):
        protocols = ["telehub.v1", f"bearer.{token}"]
        assert await ping_or_close(server.ws_url, subprotocols=protocols) == 1008


async def test_telehub_v1_is_chosen_whenever_offered_and_nothing_when_not(
    server: LiveServer,
) -> None:
    async with server.ws(subprotocols=["telehub.v1"]) as ws:  # the token in the header
        await send(ws, op="ping", id="p")
        assert await receive(ws) == {"type": "pong", "id": "p"}
        assert ws.subprotocol == "telehub.v1"
    async with server.ws() as ws:
        await send(ws, op="ping", id="p")
        assert await receive(ws) == {"type": "pong", "id": "p"}
        assert ws.subprotocol is None
        assert ws.response is not None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
