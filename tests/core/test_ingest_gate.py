"""The ingest gate: what every transport's readings go through, judged once.

Each test drives the gate as an adapter would and checks what a user sees
afterwards: what is stored, what error comes back, and what the rejected-inputs
record holds (``telehub rejected``).
"""

from __future__ import annotations

import pytest

from telehub.core.ingest_gate import BodyKind, Submission
from telehub.domain.devices import Principal, RejectedInput, Scope
from telehub.domain.readings import Telemetry
from telehub.domain.typed_batch import Limits, SeriesColumns, assemble
from telehub.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnknownDevice,
)
from telehub.hub import Hub
from tests.core.service_support import WRITER, query, readings


async def _records(hub: Hub) -> list[RejectedInput]:
    return await hub.rejected.recent(limit=10, before_id=None, device_id=None)


async def test_a_body_it_refuses_is_recorded_with_the_transport_and_an_excerpt(hub: Hub) -> None:
    with pytest.raises(InvalidInput) as refused:
        await hub.ingest.decode(
            transport="mqtt", device_id="d1", payload=b'{"values": {"t": "x", "b@d": 1}}',
            kind=BodyKind.TELEMETRY,
        )  # fmt: skip
    [record] = await _records(hub)
    assert (record.transport, record.device_id, record.reason) == ("mqtt", "d1", "invalid-input")
    assert record.excerpt == '{"values": {"t": "x", "b@d": 1}}'
    assert [e.pointer for e in refused.value.errors] == ["#/values/b@d"]


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(hub: Hub) -> None:
    limit = hub.ingest.limits.max_body_bytes
    body = b'{"values": {"t": 1}}' + b" " * limit
    with pytest.raises(PayloadTooLarge, match=f"payload is {len(body)} bytes; the limit is"):
        await hub.ingest.decode(
            transport="http", device_id="d1", payload=body, kind=BodyKind.TELEMETRY
        )
    [record] = await _records(hub)
    assert record.reason == "payload-too-large"


async def test_state_bodies_keep_numbers_as_state(hub: Hub) -> None:
    telemetry = await hub.ingest.decode(
        transport="mqtt", device_id="d1", payload=b'{"setpoint": 21}', kind=BodyKind.STATE
    )
    assert telemetry.readings == ()
    assert [(s.key, s.value) for s in telemetry.state] == [("setpoint", 21)]


async def test_an_unknown_device_is_not_found_and_its_input_recorded(hub: Hub) -> None:
    with pytest.raises(NotFound, match="'ghost' does not exist"):
        await hub.ingest.submit(
            WRITER, readings("ghost", "t", {1: 1.0}), transport="http", payload=b"the body"
        )
    [record] = await _records(hub)
    assert (record.transport, record.device_id, record.reason, record.excerpt) == (
        "http",
        "ghost",
        "unknown-device",
        "the body",
    )


async def test_submit_many_answers_each_item_and_records_only_the_unknown(hub: Hub) -> None:
    await hub.devices.create(device_id="known", name=None, attributes={})
    answers = await hub.ingest.submit_many(
        [
            Submission(readings("known", "t", {1: 1.0}), b"a"),
            Submission(readings("ghost", "t", {1: 1.0}), b"b"),
            Submission(readings("known", "t", {2: 2.0}), b"c"),
        ],
        transport="mqtt",
    )
    assert [type(a).__name__ for a in answers] == ["IngestResult", "UnknownDevice", "IngestResult"]
    assert isinstance(answers[1], UnknownDevice)
    assert [(r.device_id, r.excerpt) for r in await _records(hub)] == [("ghost", "b")]
    stored = await hub.telemetry.query("known", query())
    assert [p.value for p in stored["t"]] == [1.0, 2.0]


async def test_a_sender_may_write_only_its_own_device(hub: Hub) -> None:
    await hub.devices.create(device_id="a", name=None, attributes={})
    await hub.devices.create(device_id="b", name=None, attributes={})
    device_a = Principal(scope=None, device_id="a")
    with pytest.raises(Forbidden):
        hub.ingest.offer(device_a, readings("b", "t", {1: 1.0}))
    with pytest.raises(Forbidden):
        hub.ingest.offer(Principal(scope=Scope.READ), readings("a", "t", {1: 1.0}))
    assert hub.ingestor.queued == 0
    assert await _records(hub) == []


async def test_a_typed_batch_is_checked_under_the_gates_limits_and_rendered_only_if_refused(
    hub: Hub,
) -> None:
    renders: list[int] = []

    def excerpt() -> bytes:
        renders.append(1)
        return b"device_id: 'd1' series { metric: 't' values: nan }"

    def build(limits: Limits) -> Telemetry:
        assert limits.max_values == hub.ingest.limits.max_batch_readings
        return assemble(
            "d1", readings=[], series=[SeriesColumns("t", [1.0], [])], state=[], limits=limits
        )

    good = await hub.ingest.decode_typed(
        transport="grpc", device_id="d1", build=build, payload=excerpt
    )
    assert [r.value for r in good.readings] == [1.0]
    assert renders == []

    def bad(limits: Limits) -> Telemetry:
        return assemble(
            "d1", readings=[], series=[SeriesColumns("t", [float("nan")], [])], state=[],
            limits=limits,
        )  # fmt: skip

    with pytest.raises(InvalidInput) as refused:
        await hub.ingest.decode_typed(transport="grpc", device_id="d1", build=bad, payload=excerpt)
    assert [e.pointer for e in refused.value.errors] == ["#/series/0/values/0"]
    assert renders == [1]
    [record] = await _records(hub)
    assert (record.transport, record.excerpt) == ("grpc", excerpt().decode())
