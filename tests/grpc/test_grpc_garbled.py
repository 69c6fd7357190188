"""Bytes that are no message of the method's request type: INVALID_ARGUMENT, never a traceback.

Sent over a generic channel (no serializer), as a broken or hostile client
would. Each answer carries an ErrorInfo like the hub's other errors; the log
gets one warning however many such calls come (the autouse fixture fails a
test that logs an ERROR with a traceback).
"""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from telehub.client import grpc_calls as calls
from telehub.grpc.garbled import Throttled
from tests.grpc.conftest import GrpcHub
from tests.grpc.ingest_support import readings_batch, stored_count

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# Each fails to parse as any message: a varint that never ends, a tag of field
# number 0, a string field (ReadingBatch.device_id, for one) that is not UTF-8.
GARBAGE = (b"\xff" * 16, b"\x00\x01", b"\x0a\x02\xff\xfe")


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    for packed in status.details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == logger]


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
@pytest.mark.parametrize(
    "method",
    [
        "/telehub.v1.IngestService/PublishBatch",
        "/telehub.v1.QueryService/Latest",
        "/telehub.v1.DeviceService/Get",
    ],
)
async def test_garbage_to_a_unary_method_is_invalid_argument_with_error_info(
    grpc_hub: GrpcHub, caplog: pytest.LogCaptureFixture, method: str, with_token: bool
) -> None:
    token = await grpc_hub.device()
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        for garbage in GARBAGE:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(garbage, metadata=calls.metadata(token if with_token else None))

            assert caught.value.code() == INVALID, caught.value
            assert "not a valid protobuf message" in (caught.value.details() or "")
            info = error_info(caught.value)
            assert (info.reason, info.domain) == ("invalid-input", "telehub")
    assert len(warnings(caplog, "telehub.grpc.observe")) == 1
    assert await stored_count(grpc_hub.hub) == 0


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
async def test_garbage_to_a_server_streaming_method_is_invalid_argument(
    grpc_hub: GrpcHub, with_token: bool
) -> None:
    token = await grpc_hub.device() if with_token else None
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            "/telehub.v1.QueryService/Range"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(GARBAGE[0], metadata=calls.metadata(token)).read()

    assert caught.value.code() == INVALID
    assert error_info(caught.value).reason == "invalid-input"


async def test_garbage_in_a_publish_stream_ends_it_invalid_argument_after_what_came_before(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device()
    good = [readings_batch("dev-1", 100, start=i * 100).SerializeToString() for i in range(3)]
    errors = []
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        publish: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
            "/telehub.v1.IngestService/Publish"
        )
        for messages in ([GARBAGE[0]], [*good, GARBAGE[2], *good]):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish(iter(messages), metadata=calls.metadata(token))
            assert caught.value.code() == INVALID
            assert error_info(caught.value).reason == "invalid-input"
            errors.append(calls.decode_error(caught.value))

    first, second = (e.summary for e in errors)
    assert first is not None
    assert second is not None
    assert first.batches == 0
    # The three batches before the garbage are committed and counted; none after it is.
    assert (second.batches, second.accepted) == (3, 300)
    assert await stored_count(grpc_hub.hub) == 300


async def test_a_publish_stream_without_a_token_is_refused_before_its_bytes_are_read(
    grpc_hub: GrpcHub,
) -> None:
    """Authentication comes first in a stream: garbage from nobody is UNAUTHENTICATED,
    with the (empty) summary every failed stream carries, and no traceback either."""
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        publish: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
            "/telehub.v1.IngestService/Publish"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await publish(iter(GARBAGE), metadata=calls.metadata(None))

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(caught.value).reason == "unauthenticated"
    summary = calls.decode_error(caught.value).summary
    assert summary is not None
    assert summary.batches == 0


async def test_many_garbage_calls_log_one_warning(
    grpc_hub: GrpcHub, caplog: pytest.LogCaptureFixture
) -> None:
    token = await grpc_hub.device()
    codes = []
    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        publish_batch: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/telehub.v1.IngestService/PublishBatch"
        )
        publish: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
            "/telehub.v1.IngestService/Publish"
        )
        for i in range(30):
            metadata = calls.metadata(token if i % 2 else None)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish_batch(GARBAGE[i % 3], metadata=metadata)
            codes.append(caught.value.code())
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish(iter([GARBAGE[i % 3]]), metadata=calls.metadata(token))
            codes.append(caught.value.code())

    assert set(codes) == {INVALID}
    [warning] = warnings(caplog, "telehub.grpc.observe")
    assert "/telehub.v1.IngestService/PublishBatch" in warning.getMessage()
    assert warning.exc_info is None


def test_the_warning_after_a_quiet_spell_counts_those_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = Throttled(logging.getLogger("telehub.test"), every=60.0, clock=lambda: now[0])
    for second in range(0, 150, 10):  # one call every 10 s for 150 s
        now[0] = float(second)
        throttled.warning("bad request %d", second)

    assert [r.getMessage() for r in warnings(caplog, "telehub.test")] == [
        "bad request 0",
        "bad request 60 (5 more like it since the last warning were not logged)",
        "bad request 120 (5 more like it since the last warning were not logged)",
    ]
