"""The MQTT bridge against a real Mosquitto: telemetry and state in, bad input recorded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from telehub.config import Settings
from telehub.domain.readings import is_device_id
from telehub.hub import Hub, open_hub
from tests.conftest import require_service
from tests.mqtt.conftest import BridgeFactory, count
from tests.mqtt.support import (
    Mosquitto,
    eventually,
    port_open,
    publish,
    publish_lines,
    telemetry_topic,
)

pytestmark = pytest.mark.services

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SYSTEM_BROKER_PORT = 1883


def message(i: int, **extra: object) -> bytes:
    return json.dumps(
        {"ts": BASE_MS + i * 1000, "values": {"temperature": 20 + i} | extra}
    ).encode()


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_telemetry_at_each_qos_is_stored(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory, qos: int
) -> None:
    async with running_bridge(mqtt_hub):
        publish_lines(
            mosquitto.port, telemetry_topic("sensor-1"), [message(i) for i in range(50)], qos=qos
        )

        async def all_stored() -> bool:
            return await count(mqtt_hub, "sensor-1", "temperature") == 50

        await eventually(all_stored, what="50 readings")
    latest = await mqtt_hub.telemetry.latest("sensor-1")
    assert latest.readings["temperature"].value == 69.0


async def test_a_batch_body_and_state_fields_are_stored(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    body = [
        {"ts": BASE_MS, "values": {"temperature": 21.5, "door": "open"}},
        {"ts": BASE_MS + 60_000, "values": {"temperature": 22.0, "door": "closed"}},
    ]
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, telemetry_topic("sensor-1"), json.dumps(body).encode())

        async def stored() -> bool:
            return await count(mqtt_hub, "sensor-1", "temperature") == 2

        await eventually(stored, what="the batch")
    latest = await mqtt_hub.telemetry.latest("sensor-1")
    assert latest.state["door"][1] == "closed"


async def test_state_topic_keeps_every_key_as_state(
    mqtt_hub: Hub, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    report = {"firmware": "1.4.2", "setpoint": 21, "flags": {"eco": True}}
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, "telehub/v1/devices/sensor-2/state", json.dumps(report).encode())

        async def reported() -> bool:
            return len((await mqtt_hub.telemetry.latest("sensor-2")).state) == 3

        await eventually(reported, what="the state report")
    latest = await mqtt_hub.telemetry.latest("sensor-2")
    assert {k: v[1] for k, v in latest.state.items()} == report
    assert latest.readings == {}


BAD_PAYLOADS = [
    pytest.param("sensor-1", b"{not json", "invalid-input", id="invalid-json"),
    pytest.param("sensor-1", b'{"values": {"t": "\xff\xfe"}}', "invalid-input", id="invalid-utf8"),
    pytest.param("sensor-1", b'{"values": {"t": NaN}}', "invalid-input", id="nan"),
    pytest.param("sensor-1", b'{"values": {"t": Infinity}}', "invalid-input", id="infinity"),
    pytest.param("sensor-1", b'{"values": 5}', "invalid-input", id="wrong-type"),
    pytest.param("sensor-1", b'{"values": {"bad name!": 1}}', "invalid-input", id="metric-name"),
    pytest.param(
        "sensor-1", b'{"ts": 99999999999999, "values": {"t": 1}}', "invalid-input", id="future-ts"
    ),
    pytest.param("no-such-device", b'{"values": {"t": 1}}', "unknown-device", id="unknown-device"),
    pytest.param("sensor 1", b'{"values": {"t": 1}}', "invalid-input", id="device-id-space"),
    pytest.param("x" * 129, b'{"values": {"t": 1}}', "invalid-input", id="device-id-too-long"),
    pytest.param("_x", b'{"values": {"t": 1}}', "invalid-input", id="device-id-first-char"),
]


@pytest.mark.parametrize(("device_id", "payload", "reason"), BAD_PAYLOADS)
async def test_bad_input_is_recorded_counted_and_does_not_block_the_rest(
    mqtt_hub: Hub,
    mosquitto: Mosquitto,
    running_bridge: BridgeFactory,
    device_id: str,
    payload: bytes,
    reason: str,
) -> None:
    async with running_bridge(mqtt_hub):
        publish(mosquitto.port, telemetry_topic("sensor-1"), message(0))
        publish(mosquitto.port, telemetry_topic(device_id), payload)
        publish(mosquitto.port, telemetry_topic("sensor-1"), message(1))

        async def settled() -> bool:
            recorded = await mqtt_hub.rejected.recent(limit=10, before_id=None, device_id=None)
            return bool(recorded) and await count(mqtt_hub, "sensor-1", "temperature") == 2

        await eventually(settled, what="the rejection and both valid readings")
    [record] = await mqtt_hub.rejected.recent(limit=10, before_id=None, device_id=None)
    # A topic whose device id is malformed names no device.
    expected_device = device_id if is_device_id(device_id) else None
    assert (record.transport, record.reason, record.device_id) == ("mqtt", reason, expected_device)
    assert record.excerpt == payload.decode("utf-8", errors="replace")
    counter = mqtt_hub.metrics.rejected.labels(transport="mqtt", reason=reason)
    assert counter._value.get() == 1


async def test_oversize_payload_is_rejected_without_parsing(
    make_settings: object, mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    settings = make_settings(mqtt_url=mosquitto.url, max_body_bytes=1024)  # type: ignore[operator]
    async with open_hub(settings) as hub:
        await hub.devices.create(device_id="sensor-1", name=None, attributes={})
        big = json.dumps({"values": {f"m{i}": i for i in range(200)}}).encode()
        assert len(big) > 1024
        async with running_bridge(hub):
            publish(mosquitto.port, telemetry_topic("sensor-1"), big)

            async def recorded() -> bool:
                return bool(await hub.rejected.recent(limit=1, before_id=None, device_id=None))

            await eventually(recorded, what="the oversize rejection")
        [record] = await hub.rejected.recent(limit=1, before_id=None, device_id=None)
        assert record.reason == "payload-too-large"
        assert (await hub.telemetry.latest("sensor-1")).readings == {}


async def test_against_the_system_mosquitto_on_1883(
    make_settings: Callable[..., Settings], running_bridge: BridgeFactory
) -> None:
    """The stock broker the machine runs (max_queued_messages 1000: fine for a few messages)."""
    if not port_open(SYSTEM_BROKER_PORT):
        require_service("Mosquitto", f"nothing listens on 127.0.0.1:{SYSTEM_BROKER_PORT}")
    device_id = f"sys-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        mqtt_url=f"mqtt://127.0.0.1:{SYSTEM_BROKER_PORT}",
        mqtt_client_id=f"telehub-test-{device_id}",
        mqtt_session_expiry_seconds=60,
    )
    async with open_hub(settings) as hub:
        await hub.devices.create(device_id=device_id, name=None, attributes={})
        async with running_bridge(hub):
            publish_lines(
                SYSTEM_BROKER_PORT, telemetry_topic(device_id), [message(i) for i in range(20)]
            )

            async def stored() -> bool:
                return await count(hub, device_id, "temperature") == 20

            await eventually(stored, what="20 readings via the system Mosquitto")


MALFORMED = [
    b"{not json",
    b'{"values": {"t": "\xff\xfe"}}',
    b'{"values": {"t": NaN}}',
    b'{"values": 5}',
    b'{"values": {"bad name!": 1}}',
    b'{"ts": 99999999999999, "values": {"t": 1}}',
    b'{"values": {"t": Infinity}}',
    b'{"values": {}}',
]


async def test_1000_malformed_payloads_mixed_with_valid_ones(
    make_settings: Callable[..., Settings], mosquitto: Mosquitto, running_bridge: BridgeFactory
) -> None:
    """Every valid message stored, every malformed one recorded, none lost either way."""
    settings = make_settings(mqtt_url=mosquitto.url, mqtt_session_expiry_seconds=600)
    async with open_hub(settings) as hub:
        await hub.devices.create(device_id="sensor-1", name=None, attributes={})
        lines: list[bytes] = []
        for i in range(1000):
            lines += [message(i), MALFORMED[i % len(MALFORMED)]]
        async with running_bridge(hub):
            publish_lines(mosquitto.port, telemetry_topic("sensor-1"), lines)

            async def settled() -> bool:
                rejected = hub.metrics.rejected.labels(transport="mqtt", reason="invalid-input")
                return (
                    rejected._value.get() == 1000
                    and await count(hub, "sensor-1", "temperature") == 1000
                )

            await eventually(settled, what="1000 stored and 1000 rejected")
        recorded: list[object] = []
        before: int | None = None
        while page := await hub.rejected.recent(limit=500, before_id=before, device_id="sensor-1"):
            recorded += page
            before = page[-1].id
        assert len(recorded) == 1000
