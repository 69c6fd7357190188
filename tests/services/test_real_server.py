"""``telehub serve`` as a real process: HTTP over a socket, SIGTERM, kill -9, restart.

The server is the installed ``telehub`` command, configured by ``TELEHUB_*``
variables as in production. Tokens cannot be made across processes, so most
tests open the same SQLite file first and create an admin token.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from telehub.client.grpc_client import GrpcClient
from telehub.config import Settings, load_settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from tests.conftest import require_service
from tests.services.server_process import STARTUP_SECONDS, TELEHUB, Server, serve_env

READINGS = [
    {"ts": "2025-01-01T00:00:00Z", "values": {"temperature": 21.5, "door": "open"}},
    {"ts": "2025-01-01T00:01:00Z", "values": {"temperature": 22.0}},
]
WINDOW = {"from": "2024-12-31T00:00:00Z", "to": "2025-01-02T00:00:00Z"}


async def _admin_token(settings: Settings) -> str:
    async with open_hub(settings) as hub:
        _, secret = await hub.tokens.create(name="real-server-test", scope=Scope.ADMIN)
    return secret


def stored_count(http: httpx.Client, device_id: str, bearer: dict[str, str]) -> int:
    """How many readings of metric ``v`` the server holds for the device (one 1-day bucket)."""
    counted = http.get(
        f"/api/v1/devices/{device_id}/telemetry",
        params={**WINDOW, "interval": "1d", "agg": "count"},
        headers=bearer,
    )
    assert counted.status_code == 200, counted.text
    points = counted.json()["series"].get("v", [])
    return int(points[0]["value"]) if points else 0


Start = Callable[..., AbstractContextManager[Server]]


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path)


@pytest.fixture
def admin(server_env: dict[str, str]) -> str:
    return asyncio.run(_admin_token(load_settings(database_url=server_env["TELEHUB_DATABASE_URL"])))


@pytest.fixture
def start(server_env: dict[str, str], tmp_path: Path) -> Iterator[Start]:
    """Start a server (several may be started in turn); any left running are killed."""
    started: list[Server] = []

    @contextmanager
    def running(*command: str) -> Iterator[Server]:
        log = tmp_path / f"server-{len(started)}.log"
        server = Server(server_env, log, command or ("serve",))
        started.append(server)
        server.wait_healthy()
        yield server

    yield running
    for server in started:
        server.kill()


def test_real_server_serves_shuts_down_cleanly_and_keeps_data(start: Start, admin: str) -> None:
    bearer = {"Authorization": f"Bearer {admin}"}

    with start() as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.get("/readyz").json() == {"status": "ready", "mqtt": "subscribed"}
        created = http.post("/api/v1/devices", json={"id": "dev-1"}, headers=bearer)
        assert created.status_code == 201, created.text
        device = {"Authorization": f"Bearer {created.json()['token']}"}
        sent = http.post("/api/v1/devices/dev-1/telemetry", json=READINGS, headers=device)
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"accepted": 2, "duplicates": 0, "state": 1}
        series = http.get("/api/v1/devices/dev-1/telemetry", params=WINDOW, headers=bearer)
        assert [p["value"] for p in series.json()["series"]["temperature"]] == [21.5, 22.0]
        refused = http.post("/api/v1/devices/dev-1/telemetry", json=READINGS)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"

        server.terminate()

    with start() as again, httpx.Client(base_url=again.base_url, timeout=10) as http:
        latest = http.get("/api/v1/devices/dev-1/latest", headers=bearer)
        assert latest.status_code == 200, latest.text
        assert latest.json()["readings"]["temperature"]["value"] == 22.0
        assert latest.json()["state"]["door"]["value"] == "open"
        resent = http.post("/api/v1/devices/dev-1/telemetry", json=READINGS, headers=device)
        assert resent.json() == {"accepted": 0, "duplicates": 2, "state": 1}
        again.terminate()


def test_serve_runs_the_embedded_mqtt_broker_for_devices(
    start: Start, admin: str, server_env: dict[str, str]
) -> None:
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    bearer = {"Authorization": f"Bearer {admin}"}
    with start() as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert "telehub MQTT on mqtt://127.0.0.1:" in server.output()
        # /readyz also says what the bridge running in this process reports.
        assert http.get("/readyz").json() == {"status": "ready", "mqtt": "subscribed"}
        created = http.post("/api/v1/devices", json={"id": "dev-m"}, headers=bearer)
        token = created.json()["token"]
        for i in range(3):
            subprocess.run(
                [
                    *("mosquitto_pub", "-h", "127.0.0.1", "-p"),
                    *(server_env["TELEHUB_MQTT_EMBEDDED_PORT"], "-i", "dev-m"),
                    *("-u", "dev-m", "-P", token),
                    *("-q", "1", "-t", "telehub/v1/devices/dev-m/telemetry", "-m"),
                    json.dumps({"ts": 1_735_689_600_000 + i * 1000, "values": {"v": i}}),
                ],
                check=True,
                timeout=30,
            )
        deadline = time.monotonic() + 10
        while stored_count(http, "dev-m", bearer) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored_count(http, "dev-m", bearer) == 3
        server.terminate()


def test_serve_also_serves_grpc_and_counts_its_calls_in_metrics(
    start: Start, admin: str, server_env: dict[str, str]
) -> None:
    bearer = {"Authorization": f"Bearer {admin}"}
    target = f"127.0.0.1:{server_env['TELEHUB_GRPC_PORT']}"
    with (
        start() as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
        GrpcClient(target, token=admin, timeout=10) as grpc_client,
    ):
        assert f"telehub gRPC on {target}" in server.output()
        assert grpc_client.health() == "SERVING"
        created = http.post("/api/v1/devices", json={"id": "dev-g"}, headers=bearer)
        assert created.status_code == 201, created.text
        sent = grpc_client.send_telemetry(
            "dev-g", {"temperature": 19.5}, ts=datetime(2025, 1, 1, tzinfo=UTC)
        )
        assert sent.accepted == 1
        # One hub behind both: what gRPC committed, HTTP reads.
        latest = http.get("/api/v1/devices/dev-g/latest", headers=bearer)
        assert latest.json()["readings"]["temperature"]["value"] == 19.5
        metrics = http.get("/metrics", headers=bearer)
        assert metrics.status_code == 200, metrics.text
        calls = {
            (s.labels["method"], s.labels["code"]): s.value
            for family in text_string_to_metric_families(metrics.text)
            for s in family.samples
            if s.name == "telehub_grpc_calls_total"
        }
        assert calls[("/telehub.v1.IngestService/PublishBatch", "OK")] == 1
        assert calls[("/grpc.health.v1.Health/Check", "OK")] == 1
        server.terminate()


def test_acknowledged_readings_survive_kill_9(start: Start, admin: str) -> None:
    """A 202 means committed durably: SIGKILL right after it loses nothing."""
    bearer = {"Authorization": f"Bearer {admin}"}
    with start() as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        created = http.post("/api/v1/devices", json={"id": "dev-k"}, headers=bearer)
        device = {"Authorization": f"Bearer {created.json()['token']}"}
        batch = [
            {"ts": 1_735_689_600_000 + i * 1000, "values": {"v": float(i)}} for i in range(500)
        ]
        sent = http.post("/api/v1/devices/dev-k/telemetry", json=batch, headers=device)
        assert sent.json() == {"accepted": 500, "duplicates": 0, "state": 0}
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()

    with start() as again, httpx.Client(base_url=again.base_url, timeout=10) as http:
        assert stored_count(http, "dev-k", bearer) == 500
        again.terminate()


def test_first_start_prints_a_working_bootstrap_token(start: Start) -> None:
    with start() as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        lines = server.wait_for_line("bootstrap admin token")  # shown once the hub is up
        marker = next(i for i, line in enumerate(lines) if "bootstrap admin token" in line)
        token = lines[marker + 1].strip()
        assert token.startswith("tha_")
        listed = http.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        assert [t["scope"] for t in listed.json()] == ["admin"]
        server.terminate()


def test_a_taken_port_is_a_clear_error_naming_the_setting(server_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [TELEHUB, "serve", "--port", port],
            env=server_env,
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "TELEHUB_HTTP_PORT" in done.stderr
    assert "--port" in done.stderr


async def _device_token(settings: Settings, device_id: str) -> str:
    async with open_hub(settings) as hub:
        _, secret = await hub.devices.create(device_id=device_id, name=None, attributes={})
    return secret


def test_api_workers_share_the_port_and_lose_nothing(
    start: Start, admin: str, server_env: dict[str, str]
) -> None:
    """`telehub api --workers 2`: concurrent batches and resends land exactly once."""
    bearer = {"Authorization": f"Bearer {admin}"}
    # The device is made here, not through a `telehub serve` started only for that.
    settings = load_settings(database_url=server_env["TELEHUB_DATABASE_URL"])
    device = {"Authorization": f"Bearer {asyncio.run(_device_token(settings, 'dev-w'))}"}

    def batch(n: int) -> list[dict[str, object]]:
        return [{"ts": 1_735_689_600_000 + n * 100 + i, "values": {"v": 1.0}} for i in range(100)]

    with start("api", "--workers", "2") as server:
        assert "with 2 processes" in server.output()

        def send(n: int) -> tuple[int, int]:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                r = client.post("/api/v1/devices/dev-w/telemetry", json=batch(n), headers=device)
                assert r.status_code == 202, r.text
                return r.json()["accepted"], r.json()["duplicates"]

        # 40 distinct batches, each sent twice, from 8 threads at once.
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, [n % 40 for n in range(80)]))
        assert sum(a for a, _ in results) == 4000
        assert sum(d for _, d in results) == 4000
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            assert stored_count(http, "dev-w", bearer) == 4000
        server.terminate()
