"""mqtts://: the bridge over TLS to a Mosquitto whose certificate comes from a test CA."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.hub import open_hub
from telehub.mqtt.service import bridge_for
from tests.conftest import require_service
from tests.mqtt.conftest import count
from tests.mqtt.support import Mosquitto, eventually, telemetry_topic

pytestmark = pytest.mark.services


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> None:
    """ca.crt, and server.crt/.key for 127.0.0.1 (as a subjectAltName IP) signed by it."""
    if shutil.which("openssl") is None:
        require_service("openssl", "the openssl command is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    key = ("-newkey", "rsa:2048", "-nodes", "-days", "1")
    openssl(directory, "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=telehub test CA")  # fmt: skip
    openssl(directory, "req", *key[:3], "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
            "-days", "1", "-extfile", "san.ext")  # fmt: skip


def publish_tls(port: int, ca: Path, topic: str, body: str) -> None:
    subprocess.run(
        [
            *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", str(ca)),
            *("-q", "1", "-t", topic, "-m", body),
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    certs = tmp_path / "certs"
    make_certificates(certs)
    broker = Mosquitto(
        tmp_path / "broker",
        extra_config="".join(
            f"{option} {certs}/{name}\n"
            for option, name in (
                ("cafile", "ca.crt"),
                ("certfile", "server.crt"),
                ("keyfile", "server.key"),
            )
        ),
    )
    broker.start()
    yield broker, certs / "ca.crt"
    broker.stop()


async def test_the_bridge_stores_telemetry_over_mqtts(
    make_settings: Callable[..., Settings], tls_broker: tuple[Mosquitto, Path]
) -> None:
    broker, ca = tls_broker
    settings = make_settings(
        mqtt_url=f"mqtts://127.0.0.1:{broker.port}",
        mqtt_tls_ca_file=ca,
        mqtt_session_expiry_seconds=60,
    )
    async with open_hub(settings) as hub:
        await hub.devices.create(device_id="sensor-1", name=None, attributes={})
        bridge = bridge_for(hub)
        await bridge.start()
        try:
            body = json.dumps({"ts": 1_767_225_600_000, "values": {"v": 1}})
            publish_tls(broker.port, ca, telemetry_topic("sensor-1"), body)

            async def stored() -> bool:
                return await count(hub, "sensor-1", "v") == 1

            await eventually(stored, what="the reading over TLS")
        finally:
            await bridge.stop()


async def test_an_untrusted_certificate_is_a_clear_error(
    make_settings: Callable[..., Settings], tls_broker: tuple[Mosquitto, Path]
) -> None:
    broker, _ = tls_broker
    settings = make_settings(mqtt_url=f"mqtts://127.0.0.1:{broker.port}")  # system CAs only
    async with open_hub(settings) as hub:
        with pytest.raises(ConfigError, match="TELEHUB_MQTT_TLS_CA_FILE"):
            await bridge_for(hub).start()
