"""A key of a device is a metric or a state key, never both: a value that is not a
number for a metric of the device is refused (pointing at it) instead of becoming
state under the metric's name; a state key stored by mistake can be removed."""

from __future__ import annotations

import pytest

from telehub.core.ingest_gate import BodyKind
from telehub.domain.devices import RejectedInput
from telehub.domain.readings import StateUpdate, Telemetry
from telehub.domain.typed_batch import Limits, assemble
from telehub.errors import InvalidInput, NotFound
from telehub.hub import Hub
from tests.core.service_support import WRITER, readings


async def _records(hub: Hub) -> list[RejectedInput]:
    return await hub.rejected.recent(limit=10, before_id=None, device_id=None)


async def _with_temperature(hub: Hub) -> None:
    await hub.devices.create(device_id="d1", name=None, attributes={})
    await hub.ingest.submit(
        WRITER, readings("d1", "temperature", {1: 21.0}), transport="test", payload=b""
    )


async def _decode(hub: Hub, body: bytes, kind: BodyKind = BodyKind.TELEMETRY) -> Telemetry:
    return await hub.ingest.decode(transport="mqtt", device_id="d1", payload=body, kind=kind)


@pytest.mark.parametrize(
    ("body", "not_what"),
    [
        (b'{"values": {"temperature": "21,5"}}', "the string '21,5'"),
        (b'{"values": {"temperature": "NaN"}}', "the string 'NaN'"),
        (b'{"values": {"temperature": null}}', "null"),
        (b'{"values": {"temperature": true}}', "true"),
        (b'{"values": {"temperature": [21]}}', "a list"),
    ],
)
async def test_a_value_that_is_no_number_for_a_metric_of_the_device_is_refused_and_recorded(
    hub: Hub, body: bytes, not_what: str
) -> None:
    await _with_temperature(hub)
    with pytest.raises(InvalidInput) as refused:
        await _decode(hub, body)
    assert refused.value.detail == "'temperature' is a metric of device 'd1' and needs a number"
    assert [(e.pointer, e.detail) for e in refused.value.errors] == [
        ("#/values/temperature", f"is a metric of this device and needs a number, not {not_what}")
    ]
    [record] = await _records(hub)
    assert (record.transport, record.device_id, record.reason) == ("mqtt", "d1", "invalid-input")
    latest = await hub.telemetry.latest("d1")
    assert (list(latest.readings), latest.state) == (["temperature"], {})


async def test_state_of_other_keys_is_kept_and_a_new_device_may_send_any_state(hub: Hub) -> None:
    await _with_temperature(hub)
    telemetry = await _decode(hub, b'{"values": {"temperature": 21.5, "door": "open"}}')
    assert [(s.key, s.value) for s in telemetry.state] == [("door", "open")]
    await hub.devices.create(device_id="d2", name=None, attributes={})
    fresh = await hub.ingest.decode(
        transport="http",
        device_id="d2",
        payload=b'{"values": {"temperature": "n/a"}}',
        kind=BodyKind.TELEMETRY,
    )
    assert [s.key for s in fresh.state] == ["temperature"]  # no readings of it: state
    assert await _records(hub) == []


async def test_a_key_given_a_number_in_the_same_body_is_a_metric_there(hub: Hub) -> None:
    await hub.devices.create(device_id="d1", name=None, attributes={})
    body = b'[{"values": {"t": 1, "mode": "eco"}}, {"values": {"t": "x", "mode": "off"}}]'
    with pytest.raises(InvalidInput) as refused:
        await _decode(hub, body)
    assert [e.pointer for e in refused.value.errors] == ["#/1/values/t"]


async def test_a_state_report_naming_a_metric_is_refused(hub: Hub) -> None:
    await _with_temperature(hub)
    with pytest.raises(InvalidInput) as refused:
        await _decode(hub, b'{"temperature": 22, "setpoint": 21}', BodyKind.STATE)
    assert [(e.pointer, e.detail) for e in refused.value.errors] == [
        ("#/temperature", "is a metric of this device: send it as a reading, not as state")
    ]


async def test_typed_state_for_a_metric_points_at_its_value(hub: Hub) -> None:
    await _with_temperature(hub)

    def build(limits: Limits) -> Telemetry:
        state = [
            StateUpdate("d1", "door", limits.received_us, "open", ("state", 0, "value")),
            StateUpdate("d1", "temperature", limits.received_us, "hot", ("state", 1, "value")),
        ]
        return assemble("d1", readings=[], series=[], state=state, limits=limits)

    with pytest.raises(InvalidInput) as refused:
        await hub.ingest.decode_typed(
            transport="grpc", device_id="d1", build=build, payload=b"batch"
        )
    assert [e.pointer for e in refused.value.errors] == ["#/state/1/value"]
    [record] = await _records(hub)
    assert record.transport == "grpc"


async def test_a_state_key_can_be_deleted_and_only_an_existing_one(hub: Hub) -> None:
    await hub.devices.create(device_id="d1", name=None, attributes={})
    telemetry = await _decode(hub, b'{"values": {"temperature": "21,5", "door": "open"}}')
    await hub.ingest.submit(WRITER, telemetry, transport="test", payload=b"")
    assert set((await hub.telemetry.latest("d1")).state) == {"temperature", "door"}

    await hub.devices.delete_state("d1", "temperature")

    assert set((await hub.telemetry.latest("d1")).state) == {"door"}
    with pytest.raises(NotFound, match="no state key 'temperature'"):
        await hub.devices.delete_state("d1", "temperature")
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        await hub.devices.delete_state("ghost", "door")
