"""Device state changes reach the WebSocket subscribers of the device (``state`` frames),
on the memory bus and across processes' Redis bus alike."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from telehub.domain.readings import StateUpdate, Telemetry
from tests.live.support import LiveServer, receive, receive_until, send, subscribe

T = "2026-01-01T00:00:00Z"
T2 = "2026-01-01T00:00:05Z"


async def device(http: httpx.AsyncClient, device_id: str) -> str:
    r = await http.post("/api/v1/devices", json={"id": device_id})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def post(http: httpx.AsyncClient, token: str, device_id: str, body: Any) -> None:
    r = await http.post(
        f"/api/v1/devices/{device_id}/telemetry",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202, r.text


async def test_a_state_only_message_is_pushed_to_the_devices_subscribers(
    server: LiveServer,
) -> None:
    async with server.http() as http:
        token = await device(http, "dev-1")
        await device(http, "dev-2")
        async with server.ws() as ws:
            await subscribe(ws, "other", devices=["dev-2"])
            await subscribe(ws, "temps", devices=["dev-1"], metrics=["t"])
            await post(http, token, "dev-1", {"ts": T, "values": {"door": "open", "fw": "1.4"}})
            frame, before = await receive_until(ws, "state")
            await send(ws, op="ping", id="after")
            rest, _ = await receive_until(ws, "pong")
    assert before == []  # no readings frame for a message without readings
    assert frame == {
        "type": "state",
        "id": "temps",  # a metric filter does not hide the device's state
        "device_id": "dev-1",
        "state": {"door": {"ts": T, "value": "open"}, "fw": {"ts": T, "value": "1.4"}},
    }
    assert rest == {"type": "pong", "id": "after"}  # nothing for the other device's subscriber


async def test_readings_and_state_of_one_message_come_as_two_frames(server: LiveServer) -> None:
    async with server.http() as http:
        token = await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws)
            await post(
                http, token, "dev-1",
                [{"ts": T, "values": {"t": 1.5, "mode": "eco"}},
                 {"ts": T2, "values": {"mode": "boost", "ok": True}}],
            )  # fmt: skip
            got: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(5):
                while len(got) < 2:
                    frame = await receive(ws)
                    got[frame["type"]] = frame
    assert got["readings"]["readings"] == [
        {"device_id": "dev-1", "metric": "t", "ts": T, "value": 1.5}
    ]
    assert got["state"]["state"] == {  # each key's newest
        "mode": {"ts": T2, "value": "boost"},
        "ok": {"ts": T2, "value": True},
    }


async def test_state_from_any_transport_is_pushed(server: LiveServer) -> None:
    """What MQTT's state topic and gRPC hand the ingest path, without HTTP."""
    async with server.http() as http:
        await device(http, "dev-1")
        async with server.ws() as ws:
            await subscribe(ws, devices=["dev-1"])
            update = StateUpdate("dev-1", "firmware", 1_767_225_600_000_000, {"v": [1, 4, 2]})
            await server.hub.ingestor.submit(Telemetry("dev-1", (), (update,)))
            frame, _ = await receive_until(ws, "state")
    assert frame["state"] == {"firmware": {"ts": T, "value": {"v": [1, 4, 2]}}}
