"""gRPC follows the input rules of every transport: the device ids real devices carry,
refusals of ids no transport could carry, and no state under a metric's name."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from telehub.domain.devices import Scope
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import GrpcHub, refused
from tests.grpc.ingest_support import readings_batch, stored_count

REAL_IDS = ["aa:bb:cc:dd:ee:ff", "tasmota_1A2B3C", "0x00158d0001a2b3c4", "Greenhouse-2"]
BAD_IDS = ["a/b", "a+b", "a#b", "a b", "", "x" * 129]


async def test_devices_with_the_ids_real_devices_carry_publish_with_their_own_tokens(
    grpc_hub: GrpcHub,
) -> None:
    for device_id in REAL_IDS:
        token = await grpc_hub.device(device_id)
        async with grpc_hub.client(token) as client:
            summary = await client.publish([readings_batch(device_id, 3)])
        assert (summary.accepted, summary.rejected_batches) == (3, 0), device_id
        assert await stored_count(grpc_hub.hub, device_id) == 3


async def test_ids_no_transport_could_carry_are_refused_naming_the_field(
    grpc_hub: GrpcHub,
) -> None:
    await grpc_hub.device("dev-1")
    writer = await grpc_hub.token(Scope.WRITE)
    batches = [readings_batch(device_id, 1) for device_id in BAD_IDS]
    async with grpc_hub.client(writer) as client:
        summary = await client.publish([*batches, readings_batch("dev-1", 2)])

    assert (summary.batches, summary.accepted, summary.rejected_batches) == (7, 2, 6)
    for rejection in summary.rejections:
        assert rejection.reason == "invalid-input"
        assert [v.field for v in rejection.field_violations] == ["device_id"]
    # Recorded, naming no device: a malformed id is none (the excerpt shows it).
    records = await grpc_hub.hub.rejected.recent(limit=10, before_id=None, device_id=None)
    assert [r.device_id for r in records] == [None] * 6


async def test_state_under_a_metric_s_name_is_refused_pointing_at_its_value(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device("dev-1")
    async with grpc_hub.client(token) as client:
        await client.publish_batch(readings_batch("dev-1", 1))
        batch = telemetry_pb2.ReadingBatch(
            device_id="dev-1",
            state=[
                telemetry_pb2.StateValue(key="door", value=struct_pb2.Value(string_value="open")),
                telemetry_pb2.StateValue(
                    key="temperature", value=struct_pb2.Value(string_value="21,5")
                ),
            ],
        )
        error = await refused(client.publish_batch(batch), grpc.StatusCode.INVALID_ARGUMENT)
    async with grpc_hub.client() as admin:
        latest = await admin.latest("dev-1")

    assert error.field_violations == [
        ("state[1].value", "is a metric of this device and needs a number, not the string '21,5'")
    ]
    assert ([r.metric for r in latest.readings], list(latest.state)) == (["temperature"], [])
