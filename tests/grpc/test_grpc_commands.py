"""CommandService.Send and Watch: queue a command over gRPC and follow it to its end.

Statuses are moved the way the MQTT side moves them: ``claim_due`` (pending or
queued → sent, for online devices), ``delivered`` (the embedded broker saw the
device's PUBACK) and ``acknowledge`` (→ acked | failed); nobody delivering means
expired.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, timestamp_pb2

from telehub.client.grpc_calls import GrpcError
from telehub.domain.commands import MAX_TTL_S, MIN_TTL_S
from telehub.domain.devices import Scope
from telehub.v1 import commands_pb2
from tests.grpc.conftest import GrpcHub, refused
from tests.grpc.live_support import reading, rest_api

PENDING = commands_pb2.COMMAND_STATUS_PENDING
QUEUED = commands_pb2.COMMAND_STATUS_QUEUED
SENT = commands_pb2.COMMAND_STATUS_SENT
DELIVERED = commands_pb2.COMMAND_STATUS_DELIVERED
ACKED = commands_pb2.COMMAND_STATUS_ACKED
FAILED = commands_pb2.COMMAND_STATUS_FAILED
EXPIRED = commands_pb2.COMMAND_STATUS_EXPIRED
PARAMS = {"delay": 2, "mode": "safe", "steps": [1, "two", None], "opts": {"force": True}}


async def online(grpc_hub: GrpcHub, device_id: str) -> None:
    """A device that reported online: commands go out only to those."""
    await grpc_hub.device(device_id)
    await grpc_hub.hub.devices.report_presence(device_id, online=True, live=True)


def when(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def plain(message: Any) -> Any:
    """A Struct or Value as the JSON it carries."""
    return json_format.MessageToDict(message)


async def test_send_queues_a_pending_command_that_rest_reads_back_the_same(
    grpc_hub: GrpcHub,
) -> None:
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot", PARAMS, ttl_s=60)
    async with rest_api(grpc_hub.hub) as http:
        r = await http.get(
            f"/api/v1/devices/dev-1/commands/{command.id}",
            headers={"Authorization": f"Bearer {grpc_hub.admin}"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    stored = await grpc_hub.hub.commands.get("dev-1", command.id)
    assert command.id
    assert (command.device_id, command.name, command.status) == ("dev-1", "reboot", PENDING)
    assert plain(command.params) == PARAMS
    assert when(command.expires_at) - when(command.created_at) == timedelta(seconds=60)
    assert not command.HasField("sent_at")
    assert not command.HasField("done_at")
    assert not command.HasField("result")
    assert (body["id"], body["device_id"], body["name"]) == (command.id, "dev-1", "reboot")
    assert (body["status"], body["params"], body["result"]) == ("pending", PARAMS, None)
    assert datetime.fromisoformat(body["created_at"]) == when(command.created_at)
    assert datetime.fromisoformat(body["expires_at"]) == when(command.expires_at)
    assert (stored.id, stored.params, stored.status.value) == (command.id, PARAMS, "pending")


async def test_ttl_zero_means_the_default_of_five_minutes(grpc_hub: GrpcHub) -> None:
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot")
    assert when(command.expires_at) - when(command.created_at) == timedelta(seconds=300)
    assert plain(command.params) == {}


@pytest.mark.parametrize(
    ("ok", "result", "final"),
    [
        (True, {"uptime_s": 12, "ok": True}, ACKED),
        (False, "battery too low", FAILED),
    ],
)
async def test_watch_yields_the_current_status_then_each_change_and_ends(
    grpc_hub: GrpcHub, ok: bool, result: Any, final: int
) -> None:
    hub = grpc_hub.hub
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot", PARAMS, ttl_s=60)
        async with reading(hub, client.watch_command("dev-1", command.id)) as watch:
            current = await watch.next()
            [claimed] = await hub.commands.claim_due()
            sent = await watch.next()
            await hub.commands.acknowledge("dev-1", command.id, ok=ok, result=result)
            done = await watch.next()
            rest = await watch.rest()  # the stream ends after the final status
    assert claimed.id == command.id
    assert rest == []
    assert [c.status for c in (current, sent, done)] == [PENDING, SENT, final]
    assert {c.id for c in (current, sent, done)} == {command.id}
    assert all(plain(c.params) == PARAMS for c in (current, sent, done))
    assert not current.HasField("sent_at")
    assert sent.HasField("sent_at")
    assert not sent.HasField("done_at")
    assert done.sent_at == sent.sent_at
    assert when(done.done_at) >= when(sent.sent_at)
    assert done.result.WhichOneof("kind") == ("struct_value" if ok else "string_value")
    assert plain(done.result) == result


async def test_a_command_nobody_delivers_is_reported_expired_by_watch_and_live(
    grpc_hub: GrpcHub,
) -> None:
    hub = grpc_hub.hub
    await online(grpc_hub, "dev-1")
    async with (
        grpc_hub.client() as client,
        reading(hub, client.subscribe(commands=True, readings=False)) as live,
    ):
        command = await client.send_command("dev-1", "reboot", ttl_s=MIN_TTL_S)  # the least
        async with asyncio.timeout(MIN_TTL_S + 10):
            statuses = [c async for c in client.watch_command("dev-1", command.id)]
        changes = [(await live.next()).command, (await live.next()).command]
    assert [c.status for c in statuses] == [PENDING, EXPIRED]
    assert when(statuses[-1].done_at) >= when(command.expires_at)
    assert (await hub.commands.get("dev-1", command.id)).status.value == "expired"
    assert [(c.id, c.status) for c in changes] == [(command.id, PENDING), (command.id, EXPIRED)]
    # When it ended, as for acked and failed, and as Watch says.
    assert changes[1].done_at == statuses[-1].done_at


async def test_watch_follows_a_command_queued_for_an_offline_device_to_its_answer(
    grpc_hub: GrpcHub,
) -> None:
    hub = grpc_hub.hub
    await grpc_hub.device("dev-1")  # never connected
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot", ttl_s=60)
        async with reading(hub, client.watch_command("dev-1", command.id)) as watch:
            queued = await watch.next()
            assert await hub.commands.claim_due() == []  # offline: it waits
            await hub.devices.report_presence("dev-1", online=True, live=True)
            await hub.commands.claim_due()
            sent = await watch.next()
            await hub.commands.delivered("dev-1", command.id)
            delivered = await watch.next()
            await hub.commands.acknowledge("dev-1", command.id, ok=True, result=None)
            done = await watch.next()
            rest = await watch.rest()
    assert command.status == QUEUED
    assert [c.status for c in (queued, sent, delivered, done)] == [QUEUED, SENT, DELIVERED, ACKED]
    assert rest == []
    assert not sent.HasField("delivered_at")
    assert when(delivered.delivered_at) >= when(sent.sent_at)
    assert done.delivered_at == delivered.delivered_at


async def test_watching_a_finished_command_yields_its_final_status_and_ends(
    grpc_hub: GrpcHub,
) -> None:
    hub = grpc_hub.hub
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot", ttl_s=60)
        await hub.commands.claim_due()
        await hub.commands.acknowledge("dev-1", command.id, ok=True, result=[1, 2])
        async with asyncio.timeout(10):
            statuses = [c async for c in client.watch_command("dev-1", command.id)]
    assert [(c.id, c.status) for c in statuses] == [(command.id, ACKED)]
    assert plain(statuses[0].result) == [1, 2]
    assert statuses[0].HasField("done_at")


async def test_watching_a_device_follows_all_its_commands_until_cancelled(
    grpc_hub: GrpcHub,
) -> None:
    hub = grpc_hub.hub
    await online(grpc_hub, "dev-1")
    await online(grpc_hub, "dev-2")
    async with grpc_hub.client() as client:
        async with reading(hub, client.watch_command("dev-1")) as watch:
            first = await client.send_command("dev-1", "reboot", {"n": 1}, ttl_s=60)
            await client.send_command("dev-2", "reboot", ttl_s=60)  # another device's
            assert len(await hub.commands.claim_due()) == 2
            await hub.commands.acknowledge("dev-1", first.id, ok=True, result={"done": 1})
            second = await client.send_command("dev-1", "calibrate", ttl_s=60)
            await hub.devices.report_presence("dev-1", online=True, live=True)  # no command
            await client.send_command("dev-2", "reboot", ttl_s=60)
            third = await client.send_command("dev-1", "reboot", ttl_s=60)
            # In order, so nothing of dev-2 (nor the presence change) came in between.
            seen = [await watch.next() for _ in range(5)]
        assert not watch.ended  # it went on until cancelled
    assert [(c.id, c.status) for c in seen] == [
        (first.id, PENDING),
        (first.id, SENT),
        (first.id, ACKED),
        (second.id, PENDING),
        (third.id, PENDING),
    ]
    assert {c.device_id for c in seen} == {"dev-1"}
    assert [plain(c.params) for c in seen[:3]] == [{"n": 1}] * 3
    assert plain(seen[2].result) == {"done": 1}


async def test_send_to_an_unknown_device_is_not_found(grpc_hub: GrpcHub) -> None:
    async with grpc_hub.client() as client:
        error = await refused(client.send_command("nope", "reboot"), grpc.StatusCode.NOT_FOUND)
    assert error.reason == "not-found"
    assert "nope" in error.detail


@pytest.mark.parametrize(
    ("name", "ttl_s", "fields"),
    [
        ("bad name!", 60, ["name"]),
        ("x" * 65, 60, ["name"]),
        ("reboot", MIN_TTL_S - 1, ["ttl_s"]),
        ("reboot", MAX_TTL_S + 1, ["ttl_s"]),
        ("", 1, ["name", "ttl_s"]),
    ],
)
async def test_an_invalid_command_is_refused_naming_each_bad_field(
    grpc_hub: GrpcHub, name: str, ttl_s: int, fields: list[str]
) -> None:
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        error = await refused(
            client.send_command("dev-1", name, ttl_s=ttl_s), grpc.StatusCode.INVALID_ARGUMENT
        )
    assert error.reason == "invalid-input"
    assert [field for field, _ in error.field_violations] == fields
    assert all(description for _, description in error.field_violations)
    assert await grpc_hub.hub.commands.page("dev-1", limit=10, before=None) == []


async def test_a_read_token_may_watch_but_not_send(grpc_hub: GrpcHub) -> None:
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as admin:
        command = await admin.send_command("dev-1", "reboot", ttl_s=60)
    async with grpc_hub.client(await grpc_hub.token(Scope.READ)) as reader:
        error = await refused(
            reader.send_command("dev-1", "reboot"), grpc.StatusCode.PERMISSION_DENIED
        )
        async with reading(grpc_hub.hub, reader.watch_command("dev-1", command.id)) as watch:
            current = await watch.next()
    assert error.reason == "forbidden"
    assert (current.id, current.status) == (command.id, PENDING)


async def test_a_device_token_may_neither_send_nor_watch(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device("dev-1")
    async with grpc_hub.client(token) as device:
        await refused(device.send_command("dev-1", "reboot"), grpc.StatusCode.PERMISSION_DENIED)
        await refused(anext(device.watch_command("dev-1")), grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize(
    ("device_id", "command_id"),
    [("dev-1", "nope"), ("nope", "nope"), ("nope", "")],
    ids=["unknown-command", "unknown-device", "unknown-device-all-commands"],
)
async def test_watching_what_does_not_exist_is_not_found(
    grpc_hub: GrpcHub, device_id: str, command_id: str
) -> None:
    await online(grpc_hub, "dev-1")
    async with grpc_hub.client() as client:
        await refused(anext(client.watch_command(device_id, command_id)), grpc.StatusCode.NOT_FOUND)


async def test_a_command_of_another_device_is_not_found_by_watch(grpc_hub: GrpcHub) -> None:
    await online(grpc_hub, "dev-1")
    await online(grpc_hub, "dev-2")
    async with grpc_hub.client() as client:
        command = await client.send_command("dev-1", "reboot", ttl_s=60)
        await refused(anext(client.watch_command("dev-2", command.id)), grpc.StatusCode.NOT_FOUND)


async def test_the_sync_client_sends_like_the_async_one(grpc_hub: GrpcHub) -> None:
    await online(grpc_hub, "dev-1")

    def send_sync(device_id: str) -> commands_pb2.Command | GrpcError:
        with grpc_hub.sync_client() as client:
            try:
                return client.send_command(device_id, "set_mode", PARAMS, ttl_s=90)
            except GrpcError as exc:
                return exc

    async with grpc_hub.client() as client:
        by_async = await client.send_command("dev-1", "set_mode", PARAMS, ttl_s=90)
        async_error = await refused(
            client.send_command("nope", "set_mode", PARAMS, ttl_s=90), grpc.StatusCode.NOT_FOUND
        )
    by_sync = await asyncio.to_thread(send_sync, "dev-1")
    sync_error = await asyncio.to_thread(send_sync, "nope")
    assert isinstance(by_sync, commands_pb2.Command)
    assert by_sync.id != by_async.id
    for command in (by_sync, by_async):
        assert (command.device_id, command.name, command.status) == ("dev-1", "set_mode", PENDING)
        assert plain(command.params) == PARAMS
        assert when(command.expires_at) - when(command.created_at) == timedelta(seconds=90)
    assert isinstance(sync_error, GrpcError)
    assert (sync_error.code, sync_error.reason, sync_error.detail) == (
        async_error.code,
        async_error.reason,
        async_error.detail,
    )
    stored = await grpc_hub.hub.commands.get("dev-1", by_sync.id)
    assert (stored.name, stored.params) == ("set_mode", PARAMS)
