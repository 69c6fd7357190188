"""The live WebSocket contract, against a real server on the memory bus."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.live.support import (
    LiveServer,
    gauge,
    live_server,
    log_records,
    receive,
    receive_until,
    send,
    silent_peer,
    subscribe,
    wait_for,
)

T = "2026-01-01T00:00:00Z"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def device(http: httpx.AsyncClient, device_id: str) -> str:
    r = await http.post("/api/v1/devices", json={"id": device_id})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def ingest(http: httpx.AsyncClient, token: str, device_id: str, body: Any) -> None:
    r = await http.post(
        f"/api/v1/devices/{device_id}/telemetry",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202, r.text


def reading(device_id: str, metric: str, value: float, ts: str = T) -> dict[str, Any]:
    return {"device_id": device_id, "metric": metric, "ts": ts, "value": value}


async def test_committed_readings_reach_a_subscriber(server: LiveServer) -> None:
    async with server.http() as http:
        token = await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws)
            await ingest(http, token, "dev-1", {"ts": T, "values": {"t": 1.5, "h": 40}})
            frame, before = await receive_until(ws, "readings")
    assert before == []
    assert frame["id"] == "s1"
    assert sorted(frame["readings"], key=lambda r: r["metric"]) == [
        reading("dev-1", "h", 40.0),
        reading("dev-1", "t", 1.5),
    ]


async def test_filters_by_device_and_metric(server: LiveServer) -> None:
    async with server.http() as http:
        t1, t2 = await device(http, "dev-1"), await device(http, "dev-2")
        async with server.ws() as ws:
            await subscribe(ws, "only-2", devices=["dev-2"])
            await subscribe(ws, "temps", devices=["*"], metrics=["t"])
            await ingest(http, t1, "dev-1", {"ts": T, "values": {"t": 1, "h": 2}})
            await ingest(http, t2, "dev-2", {"ts": T, "values": {"t": 3, "h": 4}})
            got: dict[str, list[dict[str, Any]]] = {"only-2": [], "temps": []}
            async with asyncio.timeout(5):
                while len(got["only-2"]) < 2 or len(got["temps"]) < 2:
                    frame = await receive(ws)
                    assert frame["type"] == "readings"
                    got[frame["id"]].extend(frame["readings"])
    assert sorted(got["only-2"], key=lambda r: r["metric"]) == [
        reading("dev-2", "h", 4.0),
        reading("dev-2", "t", 3.0),
    ]
    assert sorted(got["temps"], key=lambda r: r["device_id"]) == [
        reading("dev-1", "t", 1.0),
        reading("dev-2", "t", 3.0),
    ]


async def test_a_resent_batch_is_not_shown_twice(server: LiveServer) -> None:
    async with server.http() as http:
        token = await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws)
            await ingest(http, token, "dev-1", {"ts": T, "values": {"t": 1}})
            await receive_until(ws, "readings")
            await ingest(http, token, "dev-1", {"ts": T, "values": {"t": 1}})  # a retry
            await send(ws, op="ping", id="after")
            pong, before = await receive_until(ws, "pong")
    assert pong == {"type": "pong", "id": "after"}
    assert before == []


async def test_unsubscribe_stops_the_stream(server: LiveServer) -> None:
    async with server.http() as http:
        token = await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws, "a")
            await send(ws, op="unsubscribe", id="a")
            assert await receive(ws) == {"type": "unsubscribed", "id": "a"}
            await ingest(http, token, "dev-1", {"ts": T, "values": {"t": 1}})
            await asyncio.sleep(0.2)
            await send(ws, op="ping", id=7)
            assert await receive(ws) == {"type": "pong", "id": 7}
            await send(ws, op="unsubscribe", id="a")
            error = await receive(ws)
    assert error["type"] == "error"
    assert error["id"] == "a"
    assert error["code"] == "invalid-input"
    assert error["errors"] == [{"detail": "unknown id", "pointer": "#/id"}]


@pytest.mark.parametrize(
    ("raw", "request_id", "pointer"),
    [
        ("not json", None, "#"),
        ('{"op": "dance", "id": 1}', 1, "#/op"),
        ('{"id": "x"}', "x", "#/op"),
        ('{"op": "subscribe", "id": "s"}', "s", "#/devices"),
        ('{"op": "subscribe", "id": "s", "devices": ["Bad Id"]}', "s", "#/devices/0"),
        (
            '{"op": "subscribe", "id": "s", "devices": ["*"], "metrics": ["a b"]}',
            "s",
            "#/metrics/0",
        ),
        ('{"op": "subscribe", "id": "s", "devices": ["*"], "extra": 1}', "s", "#/extra"),
        ('{"op": "command", "id": "c", "device_id": "dev-1"}', "c", "#/name"),
        ('{"op": "command", "device_id": "dev-1", "name": "x", "ttl_s": 1}', None, "#/ttl_s"),
        ("[1, 2]", None, "#"),
    ],
)
async def test_invalid_messages_get_an_error_and_the_socket_stays(
    server: LiveServer, raw: str, request_id: object, pointer: str
) -> None:
    async with server.ws() as ws:
        await ws.send(raw)
        error = await receive(ws)
        await send(ws, op="ping")
        assert await receive(ws) == {"type": "pong", "id": None}
    assert error["type"] == "error"
    assert error["code"] == "invalid-input"
    assert error["id"] == request_id
    assert pointer in [e["pointer"] for e in error["errors"]], error


async def test_too_many_subscriptions_is_an_error(server: LiveServer) -> None:
    async with server.ws() as ws:
        for n in range(100):
            await send(ws, op="subscribe", id=n, devices=["*"])
            assert (await receive(ws))["type"] == "subscribed"
        await send(ws, op="subscribe", id="one-more", devices=["*"])
        error = await receive(ws)
        await send(ws, op="subscribe", id=5, devices=["dev-1"])  # replacing one is fine
        assert await receive(ws) == {"type": "subscribed", "id": 5}
    assert error["code"] == "invalid-input"
    assert "at most 100" in error["detail"]


@pytest.mark.parametrize("how", ["none", "unknown", "device"])
async def test_unauthenticated_or_device_tokens_are_closed_with_1008(
    server: LiveServer, how: str
) -> None:
    token = {"none": None, "unknown": "tha_nope"}.get(how)
    if how == "device":
        _, token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    url = server.ws_url + (f"?token={token}" if token else "")
    from websockets.asyncio.client import connect

    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_token_in_the_query_string(server: LiveServer) -> None:
    from websockets.asyncio.client import connect

    token = await server.token(Scope.READ)
    async with connect(f"{server.ws_url}?token={token}") as ws:
        await send(ws, op="ping", id="p")
        assert await receive(ws) == {"type": "pong", "id": "p"}


async def test_presence_changes_are_pushed(server: LiveServer) -> None:
    async with server.http() as http:
        await device(http, "dev-1")
        await device(http, "dev-2")
        async with server.ws() as ws:
            await subscribe(ws, "d1", devices=["dev-1"])
            await server.hub.devices.report_presence("dev-2", online=True, live=True)
            await server.hub.devices.report_presence("dev-1", online=True, live=True)
            frame = await receive(ws)
    assert frame["type"] == "presence"
    assert frame["id"] == "d1"
    assert frame["device_id"] == "dev-1"
    assert frame["online"] is True
    assert frame["at"].endswith("Z")


async def test_command_over_the_socket_then_its_status_changes(server: LiveServer) -> None:
    async with server.http() as http:
        await device(http, "dev-1")
    await server.hub.devices.report_presence("dev-1", online=True, live=True)
    async with server.ws(await server.token(Scope.WRITE)) as ws:
        await send(ws, op="command", id="c1", device_id="dev-1", name="reboot", params={"a": 1})
        reply = await receive(ws)
        assert reply["type"] == "command"
        assert reply["id"] == "c1"
        command = reply["command"]
        assert command["status"] == "pending"
        assert command["params"] == {"a": 1}
        pending = await receive(ws)
        assert (pending["type"], pending["id"], pending["status"]) == (
            "command_status",
            "c1",
            "pending",
        )
        [claimed] = await server.hub.commands.claim_due()
        assert claimed.id == command["id"]
        await server.hub.commands.acknowledge("dev-1", claimed.id, ok=True, result={"up": 1})
        sent, acked = await receive(ws), await receive(ws)
    assert (sent["status"], acked["status"]) == ("sent", "acked")
    assert acked["command_id"] == command["id"]
    assert acked["result"] == {"up": 1}


async def test_a_command_watched_over_the_socket_waits_queued_then_follows_to_its_answer(
    server: LiveServer,
) -> None:
    hub = server.hub
    async with server.http() as http:
        await device(http, "dev-1")  # never connected
    async with server.ws(await server.token(Scope.WRITE)) as ws:
        await send(ws, op="command", id="c1", device_id="dev-1", name="reboot")
        reply = await receive(ws)
        command_id = reply["command"]["id"]
        assert (await receive(ws))["status"] == "queued"
        await hub.devices.report_presence("dev-1", online=True, live=True)
        await hub.commands.claim_due()
        await hub.commands.delivered("dev-1", command_id)
        await hub.commands.acknowledge("dev-1", command_id, ok=True, result=None)
        frames = [await receive(ws) for _ in range(3)]
    assert reply["command"]["status"] == "queued"
    assert [(f["type"], f["id"], f["status"]) for f in frames] == [
        ("command_status", "c1", "sent"),
        ("command_status", "c1", "delivered"),
        ("command_status", "c1", "acked"),
    ]


async def test_command_needs_write_scope_and_an_existing_device(server: LiveServer) -> None:
    async with server.ws(await server.token(Scope.READ)) as ws:
        await send(ws, op="command", id="c", device_id="dev-1", name="reboot")
        forbidden = await receive(ws)
    async with server.ws() as ws:
        await send(ws, op="command", id="c", device_id="nope", name="reboot")
        missing = await receive(ws)
    assert (forbidden["type"], forbidden["code"]) == ("error", "forbidden")
    assert (missing["type"], missing["code"]) == ("error", "not-found")


async def test_connections_over_the_limit_are_closed_with_1013(make_settings: Any) -> None:
    settings = make_settings(ws_max_connections=1)
    async with open_hub(settings) as hub, live_server(hub) as server, server.ws() as first:
        await send(first, op="ping")
        assert (await receive(first))["type"] == "pong"  # counted by now
        async with server.ws() as second:
            with pytest.raises(ConnectionClosed) as closed:
                await receive(second)
        await send(first, op="ping")
        assert (await receive(first))["type"] == "pong"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013


async def test_a_silent_peer_is_dropped_by_server_pings(make_settings: Any) -> None:
    settings = make_settings(ws_ping_interval_seconds=0.2, ws_ping_timeout_seconds=0.3)
    async with open_hub(settings) as hub, live_server(hub) as server:
        before = gauge(hub.metrics.bus_subscribers)  # the SSE event feed's own
        peer = await silent_peer(server)
        try:
            assert gauge(hub.metrics.ws_connections) == 1
            await wait_for(lambda: gauge(hub.metrics.ws_connections) == 0)
            await wait_for(lambda: gauge(hub.metrics.bus_subscribers) == before)
        finally:
            peer.close()
    assert gauge(hub.metrics.ws_dropped.labels("keepalive")) == 1


@pytest.mark.parametrize(("per_post", "pause"), [(20, 0.02), (500, 0)])
async def test_a_stalled_client_is_dropped_by_pings_quietly_and_counted(
    make_settings: Any, small_send_buffers: None, per_post: int, pause: float
) -> None:
    """A client that stops reading (and answering pings) while readings flow to it: the
    frames it never took must not hold its connection and subscription for good, and
    its drop is an expected event, counted, with no ERROR (nor traceback) logged.

    Both paces stall the server's writes to it: the slow one leaves unsent frames
    below the transport's high-water mark when the ping times out (uvicorn then
    raised RuntimeError at each later frame), the fast one has paused the sender."""
    settings = make_settings(ws_ping_interval_seconds=0.2, ws_ping_timeout_seconds=0.3)
    async with open_hub(settings) as hub, live_server(hub) as server, server.http() as http:
        token = await device(http, "dev-1")
        before = gauge(hub.metrics.bus_subscribers)
        with log_records() as records:
            peer = await silent_peer(server)
            try:
                posted = 0
                # Until it is dropped: each POST is committed and published before the next.
                async with asyncio.timeout(30):
                    while gauge(hub.metrics.ws_connections):
                        body = [
                            {"ts": 1_767_225_600_000 + posted + i, "values": {"t": float(i)}}
                            for i in range(per_post)
                        ]
                        await ingest(http, token, "dev-1", body)
                        posted += per_post
                        await asyncio.sleep(pause)
                await wait_for(lambda: gauge(hub.metrics.bus_subscribers) == before)
            finally:
                peer.close()
    assert gauge(hub.metrics.ws_dropped.labels("keepalive")) == 1
    noisy = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not noisy, [r.getMessage() for r in noisy]


def flushers() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name() == "ws-flush" and not t.done())


async def test_an_idle_connection_holds_no_sender_task(server: LiveServer) -> None:
    """Thousands of idle dashboards must cost little: a sender runs only while data flows."""
    async with server.http() as http:
        token = await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws)
            assert flushers() == 0
            await ingest(http, token, "dev-1", {"ts": T, "values": {"t": 1}})
            await receive_until(ws, "readings")
            await wait_for(lambda: flushers() == 0)
            await ingest(http, token, "dev-1", {"ts": "2026-01-01T00:00:01Z", "values": {"t": 2}})
            frame, _ = await receive_until(ws, "readings")
    assert frame["readings"][0]["value"] == 2.0


async def test_a_stalled_client_holds_up_neither_a_fast_one_nor_ingest(
    make_settings: Any, small_send_buffers: None
) -> None:
    """A dashboard that stops reading loses its own oldest readings (counted); another
    still gets each commit before the next is posted, and every POST is answered."""
    posts, per_post = 100, 500
    settings = make_settings(bus_subscriber_backlog=5000)
    async with (
        open_hub(settings) as hub,
        live_server(hub) as server,
        server.http() as http,
        server.ws() as fast,
    ):
        token = await device(http, "dev-1")
        await subscribe(fast)
        stalled = await silent_peer(server)
        frames: list[dict[str, Any]] = []
        try:
            got = 0
            for n in range(posts):
                body = [
                    {"ts": 1_767_225_600_000 + n * per_post + i, "values": {"t": float(i)}}
                    for i in range(per_post)
                ]
                await ingest(http, token, "dev-1", body)
                # In lockstep: this commit reaches the fast client whatever the stalled
                # one does (which by now has stopped taking anything).
                while got < (n + 1) * per_post:
                    frames.append(await receive(fast, 10))
                    got += len(frames[-1].get("readings", []))
        finally:
            stalled.close()
    assert [f["type"] for f in frames] == ["readings"] * len(frames)  # no gap for it
    assert got == posts * per_post
    assert gauge(hub.metrics.bus_dropped) > 0  # the stalled one lost its oldest
