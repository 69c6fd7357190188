"""Both SDKs against a hub served over HTTPS with a certificate of a throwaway CA: with
``verify=`` that CA they work as over HTTP (same results), without it they refuse the
certificate with CertificateRejected, at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from urllib3.exceptions import InsecureRequestWarning

from telehub.client import (
    AsyncClient,
    CertificateRejected,
    Client,
    ConnectionFailed,
    RetryPolicy,
)
from tests.live.support import LiveServer
from tests.tls_support import TlsFiles, make_tls_files

T0 = datetime(2025, 1, 1, tzinfo=UTC)
# A retry would sleep up to 5 s: a rejected certificate must fail well before.
SLOW_RETRIES = RetryPolicy(attempts=4, base=5.0, cap=5.0)


@pytest.fixture
def backend() -> str:
    """TLS is the transport's business: SQLite alone is enough here."""
    return "sqlite"


@pytest.fixture
async def server(https_server: LiveServer) -> LiveServer:
    await https_server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    return https_server


async def _sync(work: Callable[[], Any]) -> Any:
    """Blocking client calls on a thread: the server runs on this loop."""
    return await asyncio.to_thread(work)


def _readings() -> list[dict[str, Any]]:
    return [
        {"ts": (T0 + timedelta(seconds=i)).isoformat(), "values": {"t": float(i)}} for i in range(5)
    ]


async def test_both_clients_post_and_read_over_https_with_the_ca_file(
    server: LiveServer, tls: TlsFiles
) -> None:
    assert server.base.startswith("https://")

    def through_sync() -> tuple[Any, ...]:
        with Client(server.base, token=server.admin, verify=tls.ca) as client:
            client.create_device("dev-s")
            sent = client.send_telemetry("dev-s", _readings())
            again = client.send_telemetry("dev-s", _readings())
            series = client.query("dev-s", metrics=["t"], start=T0)
            return sent, again, series.series

    sync = await _sync(through_sync)
    async with AsyncClient(server.base, token=server.admin, verify=str(tls.ca)) as client:
        await client.create_device("dev-a")
        sent = await client.send_telemetry("dev-a", _readings())
        again = await client.send_telemetry("dev-a", _readings())
        series = await client.query("dev-a", metrics=["t"], start=T0)
    aio = (sent, again, series.series)

    assert sync == aio
    assert (sent.accepted, sent.duplicates, again.accepted, again.duplicates) == (5, 0, 0, 5)
    assert [p.value for p in series.series["t"]] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_without_the_ca_both_clients_reject_the_certificate_at_once(
    server: LiveServer,
) -> None:
    def through_sync() -> CertificateRejected:
        with (
            Client(server.base, token=server.admin, retry=SLOW_RETRIES) as client,
            pytest.raises(CertificateRejected) as caught,
        ):
            client.list_tokens()  # a GET: retried on any other connection error
        return caught.value

    started = time.monotonic()
    sync = await _sync(through_sync)
    async with AsyncClient(server.base, token=server.admin, retry=SLOW_RETRIES) as client:
        with pytest.raises(CertificateRejected) as caught:
            await client.list_tokens()
    assert time.monotonic() - started < 2.0  # neither retried
    aio = caught.value

    for error in (sync, aio):
        assert isinstance(error, ConnectionFailed)  # old handlers still catch it
        assert error.reason == "unable to get local issuer certificate"
        assert "GET /api/v1/tokens: the server's TLS certificate was not accepted" in str(error)
        assert "verify=PATH" in str(error)
    assert str(sync) == str(aio)


async def test_a_ca_that_did_not_sign_the_certificate_is_rejected_too(
    server: LiveServer, tmp_path: Path
) -> None:
    other = make_tls_files(tmp_path / "other").ca

    def through_sync() -> None:
        with Client(server.base, token=server.admin, verify=other) as client:
            client.send_telemetry("dev-1", {"t": 1.0})

    with pytest.raises(CertificateRejected):
        await _sync(through_sync)
    async with AsyncClient(server.base, token=server.admin, verify=other) as client:
        with pytest.raises(CertificateRejected):
            await client.send_telemetry("dev-1", {"t": 1.0})


async def test_verify_false_skips_the_check_on_both(server: LiveServer) -> None:
    def through_sync() -> int:
        # requests (urllib3) warns of every unverified request; aiohttp says nothing.
        with (
            Client(server.base, token=server.admin, verify=False) as client,
            pytest.warns(InsecureRequestWarning),
        ):
            return client.send_telemetry("dev-1", {"t": 1.0}, ts=T0).accepted

    assert await _sync(through_sync) == 1
    async with AsyncClient(server.base, token=server.admin, verify=False) as client:
        sent = await client.send_telemetry("dev-1", {"t": 2.0}, ts=T0 + timedelta(seconds=1))
    assert sent.accepted == 1


def test_a_missing_ca_file_fails_where_the_client_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(FileNotFoundError, match=r"nope\.pem"):
        Client("https://127.0.0.1:1", verify=missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.pem"):
        AsyncClient("https://127.0.0.1:1", verify=missing)


async def test_the_live_feeds_of_both_clients_use_the_ca_file(
    server: LiveServer, tls: TlsFiles
) -> None:
    """tail (wss://) and events (SSE over https://) with the same verify= as the calls."""
    got: list[dict[str, Any]] = []

    def tail() -> None:
        with Client(server.base, token=server.admin, verify=tls.ca) as client:
            for message in client.tail(devices=["dev-1"]):
                if message["type"] == "readings":
                    got.append(message)
                    return

    reader = asyncio.create_task(asyncio.to_thread(tail))
    async with AsyncClient(server.base, token=server.admin, verify=tls.ca) as client:
        async with asyncio.timeout(10):
            while not reader.done() and not got:
                # Until the reader is subscribed, a reading may pass unseen: send again.
                await client.send_telemetry("dev-1", {"t": 20.0})
                await asyncio.sleep(0.2)
        await asyncio.wait_for(reader, 10)
        assert got[0]["readings"][0]["metric"] == "t"

        async def first_reading() -> dict[str, Any]:
            async for message in client.tail(devices=["dev-1"]):
                if message["type"] == "readings":
                    return message
            raise AssertionError("the tail ended")

        reading = asyncio.create_task(first_reading())
        async with asyncio.timeout(10):
            while not reading.done():
                await client.send_telemetry("dev-1", {"t": 21.0})
                await asyncio.sleep(0.2)
        assert (await reading)["readings"][0]["metric"] == "t"

        command = await client.send_command("dev-1", "reboot", ttl_s=60)
        events = client.events(types=["commands"], last_event_id="0")
        event = await asyncio.wait_for(anext(aiter(events)), 10)

    def sync_event() -> Any:
        with Client(server.base, token=server.admin, verify=tls.ca) as client:
            return next(iter(client.events(types=["commands"], last_event_id="0")))

    sync = await asyncio.wait_for(_sync(sync_event), 10)
    assert event.json() == sync.json()
    assert command.id in event.data
