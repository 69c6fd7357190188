"""The REST SDKs against a real server: the sync and async clients give the same results
and the same errors for the same calls, retry through push-back, and say clearly when
nothing answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehub.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Overloaded,
    RetryPolicy,
    Unauthorized,
    ValidationFailed,
)
from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.hub import Hub, open_hub
from tests.grpc.ingest_support import held_writer
from tests.live.support import LiveServer, gauge, live_server, wait_for

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def server(hub: Hub) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running:
        yield running


def _both(server: LiveServer, token: str | None = None) -> tuple[Client, AsyncClient]:
    token = token or server.admin
    return Client(server.base, token=token), AsyncClient(server.base, token=token)


async def _sync(client: Client, work: Callable[[Client], Any]) -> Any:
    """Run blocking client calls on a thread: the server runs on this loop."""

    def run() -> Any:
        with client:
            return work(client)

    return await asyncio.to_thread(run)


async def test_devices_and_telemetry_read_the_same_through_both_clients(
    server: LiveServer,
) -> None:
    sync, aio = _both(server)
    async with aio:
        created = [
            await aio.create_device(f"dev-{n}", attributes={"site": "north" if n % 2 else "south"})
            for n in range(5)
        ]
        device = created[1]
        sent = await aio.send_telemetry(
            "dev-1",
            [
                {"ts": (T0 + timedelta(seconds=s)).isoformat(), "values": {"t": s}}
                for s in range(10)
            ],
        )
        renamed = await aio.update_device("dev-1", name="Greenhouse 1")
        rotated = await aio.rotate_device_token("dev-2")
        await aio.delete_device("dev-4")
        want = (
            await aio.get_device("dev-1"),
            [d async for d in aio.list_devices(page_size=2)],
            [d.id async for d in aio.list_devices(attributes={"site": "north"})],
            await aio.query(
                "dev-1", start=T0, end=T0 + timedelta(minutes=1), interval="5s", agg="sum"
            ),
            await aio.latest("dev-1"),
        )

    got = await _sync(
        sync,
        lambda c: (
            c.get_device("dev-1"),
            list(c.list_devices(page_size=2)),
            [d.id for d in c.list_devices(attributes={"site": "north"})],
            c.query("dev-1", start=T0, end=T0 + MINUTE, interval="5s", agg="sum"),
            c.latest("dev-1"),
        ),
    )

    assert got == want
    assert device.token.startswith("thd_")
    assert (sent.accepted, sent.duplicates) == (10, 0)
    assert renamed.name == "Greenhouse 1"
    assert rotated.token.startswith("thd_")
    assert [d.id for d in want[1]] == ["dev-0", "dev-1", "dev-2", "dev-3"]
    assert want[2] == ["dev-1", "dev-3"]
    assert [p.value for p in want[3].series["t"]] == [10.0, 35.0]
    assert want[4].readings["t"].value == 9.0


async def test_errors_are_the_same_typed_exceptions_on_both(server: LiveServer) -> None:
    reader = await server.token(Scope.READ)
    calls: list[tuple[str | None, Callable[[Any], Any], type[Exception]]] = [
        (None, lambda c: c.get_device("ghost"), NotFound),
        (None, lambda c: c.send_telemetry("ghost", {"bad metric": 1}), ValidationFailed),
        (reader, lambda c: c.create_device("x"), Forbidden),
        ("tha_unknown", lambda c: c.latest("ghost"), Unauthorized),
    ]
    for token, call, kind in calls:
        sync, aio = _both(server, token)
        async with aio:
            with pytest.raises(kind) as from_async:
                await call(aio)

        def blocking(c: Client, call: Callable[[Any], Any] = call) -> Exception:
            try:
                call(c)
            except Exception as exc:
                return exc
            raise AssertionError("no error")

        from_sync = await _sync(sync, blocking)
        assert type(from_sync) is kind
        got = (from_sync.status, from_sync.problem_type, from_sync.detail, from_sync.errors)
        want = from_async.value
        assert got == (want.status, want.problem_type, want.detail, want.errors)
    assert from_async.value.status == 401


async def test_a_bad_field_is_named(server: LiveServer) -> None:
    async with AsyncClient(server.base, token=server.admin) as client:
        await client.create_device("dev-1")
        with pytest.raises(ValidationFailed) as caught:
            await client.send_telemetry("dev-1", {"bad metric": 1.0})

    assert caught.value.problem_type == "invalid-input"
    assert [e.get("pointer") for e in caught.value.errors] == ["#/values/bad metric"]


# --- push-back and no answer ----------------------------------------------------------


async def _full_queue_then_release(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, server: LiveServer, attempt: Callable[[], Any]
) -> Any:
    """Fill the queue behind a held writer, start ``attempt`` (it meets a 503), then release."""
    async with (
        held_writer(hub, monkeypatch) as held,
        AsyncClient(server.base, token=server.admin) as filler,
    ):
        await filler.create_device("dev-1")
        batch = [
            {"ts": (T0 + timedelta(seconds=s)).isoformat(), "values": {"t": 1}}
            for s in range(10_000)
        ]
        filling = asyncio.create_task(filler.send_telemetry("dev-1", batch))
        await asyncio.wait_for(held.writing.wait(), 10)
        trying = asyncio.ensure_future(attempt())
        await wait_for(lambda: gauge(hub.metrics.backpressure) >= 1, 10)
        held.release.set()
        await filling
        return await trying


@pytest.fixture
async def small_queue(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        ingest_queue_readings=10_000, max_batch_readings=10_000, ingest_retry_after=1.0
    )
    async with open_hub(settings) as hub, live_server(hub) as running:
        yield running


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_503_with_retry_after_is_retried_until_accepted(
    small_queue: LiveServer, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    one = {"temperature": 20.0}
    at = T0 + timedelta(hours=1)

    async def attempt() -> Any:
        if kind == "async":
            async with AsyncClient(small_queue.base, token=small_queue.admin) as client:
                return await client.send_telemetry("dev-1", one, ts=at)
        client = Client(small_queue.base, token=small_queue.admin)
        return await _sync(client, lambda c: c.send_telemetry("dev-1", one, ts=at))

    accepted = await _full_queue_then_release(small_queue.hub, monkeypatch, small_queue, attempt)

    assert accepted.accepted == 1
    assert gauge(small_queue.hub.metrics.backpressure) == 1  # it did meet the 503


async def test_when_retries_run_out_overloaded_carries_retry_after(
    small_queue: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def attempt() -> Any:
        async with AsyncClient(
            small_queue.base, token=small_queue.admin, retry=RetryPolicy(attempts=1)
        ) as client:
            with pytest.raises(Overloaded) as caught:
                await client.send_telemetry("dev-1", {"t": 1.0}, ts=T0 + timedelta(hours=1))
            return caught.value

    error = await _full_queue_then_release(small_queue.hub, monkeypatch, small_queue, attempt)

    assert (error.status, error.problem_type, error.retry_after) == (503, "overloaded", 1.0)


async def test_no_server_is_connection_failed_after_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        quick = RetryPolicy(attempts=2, base=0.01, cap=0.01)
        async with AsyncClient(url, token="tha_x", retry=quick) as aio:
            with pytest.raises(ConnectionFailed):
                await aio.get_device("dev-1")

        def blocking() -> None:
            with Client(url, token="tha_x", retry=quick) as client:
                client.get_device("dev-1")

        with pytest.raises(ConnectionFailed):
            await asyncio.to_thread(blocking)


async def test_ids_stay_one_path_segment_and_attributes_can_be_cleared(
    server: LiveServer,
) -> None:
    async with AsyncClient(server.base, token=server.admin) as client:
        await client.create_device("dev-1", attributes={"site": "north"})
        with pytest.raises(NotFound):  # "../tokens" stays one segment: no route, not /tokens
            await client.get_device("../tokens")
        with pytest.raises(ValidationFailed, match="cannot be an id"):
            await client.delete_device("..")
        cleared = await client.update_device("dev-1", attributes={})

    assert cleared.attributes == {}


async def test_both_clients_delete_a_state_key_of_a_device_with_a_mac_address_id(
    server: LiveServer,
) -> None:
    mac = "aa:bb:cc:dd:ee:ff"
    sync, aio = _both(server)
    async with aio:
        await aio.create_device(mac)
        await aio.send_telemetry(mac, {"t": 1.0, "door": "open", "mode": "eco"})
        await aio.delete_state(mac, "door")
        with pytest.raises(NotFound):
            await aio.delete_state(mac, "door")

    def delete_mode(c: Client) -> Any:
        c.delete_state(mac, "mode")
        with pytest.raises(NotFound):
            c.delete_state(mac, "mode")
        return c.latest(mac)

    latest = await _sync(sync, delete_mode)
    assert (list(latest.readings), latest.state) == (["t"], {})
