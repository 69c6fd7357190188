"""``telehub tail`` and ``telehub events`` as a user runs them, against a real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import orjson
import pytest

from telehub.cli.exit_codes import Exit
from telehub.listeners import bind
from tests.live.support import LiveServer, gauge, wait_for

TELEHUB = os.path.join(os.path.dirname(sys.executable), "telehub")


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def bus() -> str:
    return "memory"  # the commands are the subject here; the bus is tested elsewhere


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        TELEHUB,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"TELEHUB_TOKEN": "", "TELEHUB_URL": ""},
    )


async def lines(proc: asyncio.subprocess.Process) -> AsyncIterator[dict[str, object]]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line, "the command ended early"
        yield orjson.loads(line)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_tail_prints_committed_readings(server: LiveServer) -> None:
    _, device_token = await server.hub.devices.create(device_id="dev-1", name=None, attributes={})
    before = gauge(server.hub.metrics.bus_subscribers)
    proc = await start("tail", "--json", "--url", server.base, "--token", server.admin, "-m", "t")
    try:
        await wait_for(lambda: gauge(server.hub.metrics.bus_subscribers) > before, 15)
        async with server.http() as http:
            r = await http.post(
                "/api/v1/devices/dev-1/telemetry",
                json={"ts": "2026-01-01T00:00:00Z", "values": {"t": 2.5, "h": 1}},
                headers={"Authorization": f"Bearer {device_token}"},
            )
            assert r.status_code == 202
        first = await anext(lines(proc))
    finally:
        await stop(proc)
    assert first == {
        "device_id": "dev-1",
        "metric": "t",
        "ts": "2026-01-01T00:00:00Z",
        "value": 2.5,
    }


async def test_events_resume_from_an_id(server: LiveServer) -> None:
    for device_id in ("dev-1", "dev-2"):
        await server.hub.devices.create(device_id=device_id, name=None, attributes={})
        await server.hub.devices.report_presence(device_id, online=True, live=True)
    proc = await start(
        "events", "--json", "--url", server.base, "--token", server.admin, "--last-event-id", "0"
    )
    try:
        stream = lines(proc)
        got = [await anext(stream), await anext(stream)]
    finally:
        await stop(proc)
    assert [(e["event"], e["data"]["device_id"]) for e in got] == [  # type: ignore[index]
        ("presence", "dev-1"),
        ("presence", "dev-2"),
    ]
    assert int(str(got[0]["id"])) < int(str(got[1]["id"]))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("tail", "closed by the server (1008)"),
        ("events", "401 unauthenticated: "),
    ],
)
async def test_a_bad_token_is_one_line_and_exit_4(
    server: LiveServer, command: str, message: str
) -> None:
    proc = await start(command, "--url", server.base, "--token", "tha_wrong")
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await stop(proc)
    assert proc.returncode == Exit.AUTH
    text = stderr.decode().strip()
    assert text.startswith("telehub: "), text
    assert message in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("command", ["tail", "events"])
async def test_no_server_is_one_line_and_exit_3(command: str) -> None:
    sock = bind("127.0.0.1", 0, setting="(test)", flag="(test)")
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    proc = await start(command, "--url", f"http://127.0.0.1:{port}", "--token", "tha_x")
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == Exit.UNREACHABLE
    text = stderr.decode().strip()
    assert text.startswith("telehub: cannot reach"), text
    assert text.endswith("Connection refused"), text
    assert "\n" not in text
