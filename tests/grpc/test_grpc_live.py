"""LiveService.Subscribe: what a service following the hub over gRPC relies on.

Every ingest path (gRPC, REST, MQTT) feeds the same stream; filters, presence and
command events; refused subscriptions; and the WebSocket's backlog-and-gap rule for
a subscriber that stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc
import pytest

from telehub.client.grpc_client import AsyncGrpcClient
from telehub.config import Settings
from telehub.grpc.live import MAX_FILTER_ITEMS
from telehub.hub import open_hub
from telehub.mqtt.service import mqtt_running
from telehub.v1 import commands_pb2, devices_pb2, live_pb2
from tests.grpc.conftest import GrpcHub, grpc_hub_with, refused, serve_grpc
from tests.grpc.live_support import (
    first_of,
    kind,
    mqtt_publish,
    reading,
    readings_batch,
    rest_api,
    rows,
    stalled_subscriber,
)
from tests.live.support import gauge, wait_for
from tests.mqtt.support import free_port
from tests.services.redis_support import REDIS_URL, require_redis, unique_prefix

MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SUBSCRIBE = "/telehub.v1.LiveService/Subscribe"
# For what the request alone decides (no storage involved): SQLite only.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


async def test_readings_from_grpc_rest_and_mqtt_arrive_on_one_subscription(
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    async with grpc_hub_with(make_settings, mqtt_url="embedded", mqtt_embedded_port=port) as gh:
        tokens = {d: await gh.device(d) for d in ("dev-grpc", "dev-rest", "dev-mqtt")}
        async with (
            mqtt_running(gh.hub),
            rest_api(gh.hub) as http,
            gh.client() as client,
            reading(gh.hub, client.subscribe()) as live,
            gh.client(tokens["dev-grpc"]) as device,
        ):
            batch = readings_batch("dev-grpc", [1.5, -2.25], first_ms=MS, metric="temp")
            assert (await device.publish_batch(batch)).accepted == 2
            via_grpc = await live.next()

            r = await http.post(
                "/api/v1/devices/dev-rest/telemetry",
                json={"ts": MS + 1000, "values": {"hum": 40.5}},
                headers={"Authorization": f"Bearer {tokens['dev-rest']}"},
            )
            assert r.status_code == 202, r.text
            via_rest = await live.next()

            await mqtt_publish(
                port, "dev-mqtt", tokens["dev-mqtt"], {"ts": MS + 2000, "values": {"v": 7}}
            )
            via_mqtt = await live.next()
    assert [kind(e) for e in (via_grpc, via_rest, via_mqtt)] == ["readings"] * 3
    assert rows(via_grpc.readings) == [
        ("dev-grpc", "temp", 1.5, MS),
        ("dev-grpc", "temp", -2.25, MS + 1),
    ]
    assert rows(via_rest.readings) == [("dev-rest", "hum", 40.5, MS + 1000)]
    assert rows(via_mqtt.readings) == [("dev-mqtt", "v", 7.0, MS + 2000)]
    assert via_grpc.at.ToMilliseconds() > 0  # when the hub committed it


async def test_device_and_metric_filters_restrict_what_arrives(grpc_hub: GrpcHub) -> None:
    t1, t2 = await grpc_hub.device("dev-1"), await grpc_hub.device("dev-2")
    async with (
        grpc_hub.client() as client,
        reading(grpc_hub.hub, client.subscribe(devices=["dev-2"])) as only_2,
        reading(grpc_hub.hub, client.subscribe(metrics=["t"])) as temps,
        grpc_hub.client(t1) as dev1,
        grpc_hub.client(t2) as dev2,
    ):
        await dev1.send_telemetry("dev-1", {"t": 1, "h": 2})
        await dev2.send_telemetry("dev-2", {"h": 3})
        await dev2.send_telemetry("dev-2", {"t": 4, "h": 5})
        # Each stream is in commit order: what comes first proves what was left out.
        first_2, second_2 = await only_2.next(), await only_2.next()
        first_t, second_t = await temps.next(), await temps.next()
    assert [(r.metric, r.value) for r in first_2.readings.readings] == [("h", 3.0)]
    assert [(r.metric, r.value) for r in second_2.readings.readings] == [("t", 4.0), ("h", 5.0)]
    assert {first_2.readings.device_id, second_2.readings.device_id} == {"dev-2"}
    assert (first_t.readings.device_id, second_t.readings.device_id) == ("dev-1", "dev-2")
    assert [(r.metric, r.value) for r in first_t.readings.readings] == [("t", 1.0)]
    assert [(r.metric, r.value) for r in second_t.readings.readings] == [("t", 4.0)]


async def test_a_resent_batch_produces_no_live_event(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device("dev-1")
    first = readings_batch("dev-1", [1.0, 2.0], first_ms=MS)
    after = readings_batch("dev-1", [3.0], first_ms=MS + 10)
    async with (
        grpc_hub.client() as client,
        reading(grpc_hub.hub, client.subscribe()) as live,
        grpc_hub.client(token) as device,
    ):
        await device.publish_batch(first)
        assert rows((await live.next()).readings) == rows(first)
        again = await device.publish_batch(first)  # a retry after a lost answer
        await device.publish_batch(after)
        following = await live.next()
    assert (again.accepted, again.duplicates) == (0, 2)
    assert rows(following.readings) == rows(after)


async def test_presence_changes_arrive_only_when_asked_for(grpc_hub: GrpcHub) -> None:
    hub = grpc_hub.hub
    token = await grpc_hub.device("dev-1")
    await grpc_hub.device("dev-2")
    async with (
        grpc_hub.client() as client,
        reading(hub, client.subscribe(devices=["dev-1"], presence=True)) as presence,
        reading(hub, client.subscribe()) as readings_only,
        grpc_hub.client(token) as device,
    ):
        await hub.devices.report_presence("dev-2", online=True, live=True)  # not followed
        await hub.devices.report_presence("dev-1", online=True, live=True)
        await hub.devices.report_presence("dev-1", online=False, live=True)
        online, offline = await presence.next(), await presence.next()
        await device.send_telemetry("dev-1", {"t": 1})
        assert kind(await readings_only.next()) == "readings"  # and no presence before it
        assert kind(await presence.next()) == "readings"
    assert [kind(online), kind(offline)] == ["presence", "presence"]
    assert (online.presence.device_id, online.presence.presence) == (
        "dev-1",
        devices_pb2.PRESENCE_ONLINE,
    )
    assert (offline.presence.device_id, offline.presence.presence) == (
        "dev-1",
        devices_pb2.PRESENCE_OFFLINE,
    )
    assert offline.presence.at.ToMicroseconds() >= online.presence.at.ToMicroseconds() > 0


async def test_command_status_changes_arrive_on_an_events_only_subscription(
    grpc_hub: GrpcHub,
) -> None:
    hub = grpc_hub.hub
    token = await grpc_hub.device("dev-1")
    await hub.devices.report_presence("dev-1", online=True, live=True)  # commands go out
    async with (
        grpc_hub.client() as client,
        reading(hub, client.subscribe(commands=True, readings=False)) as live,
        grpc_hub.client(token) as device,
    ):
        command = await client.send_command("dev-1", "reboot", {"delay": 2})
        pending = await live.next()
        [claimed] = await hub.commands.claim_due()
        sent_event = await live.next()
        await device.send_telemetry("dev-1", {"t": 1})  # readings are not asked for
        await hub.commands.acknowledge("dev-1", command.id, ok=True, result={"up": True})
        acked = await live.next()
    assert claimed.id == command.id
    changes = [e.command for e in (pending, sent_event, acked)]
    assert [kind(e) for e in (pending, sent_event, acked)] == ["command"] * 3
    assert {(c.id, c.device_id, c.name) for c in changes} == {(command.id, "dev-1", "reboot")}
    assert [c.status for c in changes] == [
        commands_pb2.COMMAND_STATUS_PENDING,
        commands_pb2.COMMAND_STATUS_SENT,
        commands_pb2.COMMAND_STATUS_ACKED,
    ]
    assert changes[1].HasField("sent_at")
    assert changes[2].HasField("done_at")
    assert dict(changes[2].result.struct_value) == {"up": True}


@sqlite_only
@pytest.mark.parametrize(
    ("devices", "metrics", "field"),
    [
        (["Bad Id!"], [], "device_ids[0]"),
        (["dev-1", "Bad Id!"], [], "device_ids[1]"),
        ([], ["bad metric"], "metrics[0]"),
        ([f"dev-{i}" for i in range(MAX_FILTER_ITEMS + 1)], [], "device_ids"),
    ],
)
async def test_an_invalid_filter_is_refused_naming_the_field(
    grpc_hub: GrpcHub, devices: list[str], metrics: list[str], field: str
) -> None:
    async with grpc_hub.client() as client:
        error = await refused(
            anext(client.subscribe(devices=devices, metrics=metrics)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    assert error.reason == "invalid-input"
    assert [f for f, _ in error.field_violations] == [field]


@sqlite_only
async def test_a_subscription_to_nothing_is_refused(grpc_hub: GrpcHub) -> None:
    async with grpc_hub.client() as client:
        error = await refused(
            anext(client.subscribe(readings=False)), grpc.StatusCode.INVALID_ARGUMENT
        )
    assert [f for f, _ in error.field_violations] == ["no_readings"]


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("device", grpc.StatusCode.PERMISSION_DENIED),
        ("nobody", grpc.StatusCode.UNAUTHENTICATED),
        ("unknown", grpc.StatusCode.UNAUTHENTICATED),
    ],
)
async def test_only_api_tokens_may_subscribe(
    grpc_hub: GrpcHub, who: str, code: grpc.StatusCode
) -> None:
    token = {"device": await grpc_hub.device("dev-1"), "nobody": None, "unknown": "tha_nope"}[who]
    async with AsyncGrpcClient(grpc_hub.target, token=token) as client:
        await refused(anext(client.subscribe()), code)


async def test_a_subscriber_that_stops_reading_gets_a_gap_then_live_data_again(
    make_settings: Callable[..., Settings],
) -> None:
    """The WebSocket's rule over gRPC: a subscriber that does not read loses its own
    oldest readings (counted in a Gap), while ingest and other subscribers go on.

    HTTP/2 flow control lets the server write only as far as the client's receive
    window. By default gRPC grows that window with BDP probes, to megabytes on loopback
    (measured: ~4 MB, 1500 commits of 100 readings, went out before the server blocked);
    with probing off it stays at 64 KiB. The stalled subscriber's channel turns probing
    off and reads ahead 1 KiB (``grpc.http2.lookahead_bytes``), so the server's send
    blocks on about the first event; from then on its bus subscription is not drained
    and overflows its backlog of 100 readings. Commits of 1000 readings go on until the
    hub counts a drop (at most 50), so the test does not depend on exact buffer sizes.
    """
    per_commit, most = 1000, 50
    async with grpc_hub_with(make_settings, bus_subscriber_backlog=100) as gh:
        hub = gh.hub
        token = await gh.device("dev-1")
        async with (
            stalled_subscriber(gh) as stalled,
            gh.client() as client,
            reading(hub, client.subscribe()) as fast,
            gh.client(token) as device,
        ):
            published: list[live_pb2.LiveEvent] = []
            while gauge(hub.metrics.bus_dropped) == 0:
                assert len(published) < most, "the stalled subscriber never fell behind"
                values = [float(len(published))] * per_commit
                batch = readings_batch("dev-1", values, first_ms=MS + len(published) * per_commit)
                # Every commit is answered, and reaches a subscriber that reads before
                # the next one is sent: nobody waits for the stalled one.
                assert (await device.publish_batch(batch)).accepted == per_commit
                assert rows((await fast.next()).readings) == rows(batch)
                published.append(live_pb2.LiveEvent(readings=batch))

            gap, before = await first_of(stalled, lambda e: kind(e) != "readings")
            kept = await stalled.next()
            marker = readings_batch("dev-1", [-1.0], first_ms=MS - 1)
            await device.publish_batch(marker)
            live_again = await stalled.next()
    assert kind(gap) == "gap"
    assert gap.gap.reason == "slow-consumer"
    assert gap.gap.dropped > 0
    # Nothing is lost silently: delivered + dropped = published, oldest first.
    got = [r for e in before for r in rows(e.readings)]
    assert got == [r for e in published[: len(before)] for r in rows(e.readings)]
    assert kind(kept) == "readings"
    assert rows(kept.readings) == rows(published[-1].readings)
    assert len(got) + gap.gap.dropped + per_commit == len(published) * per_commit
    assert rows(live_again.readings) == rows(marker)


def calls(gh: GrpcHub, method: str) -> dict[str, float]:
    """Finished calls of ``method`` by status code, as /metrics shows them."""
    [family] = gh.hub.metrics.grpc_calls.collect()
    return {
        s.labels["code"]: s.value
        for s in family.samples
        if s.name.endswith("_total") and s.labels["method"] == method
    }


async def test_hanging_up_while_the_server_waits_to_write_is_a_clean_cancel(
    make_settings: Callable[..., Settings],
) -> None:
    """A dashboard closed while data is flowing to it: the call is counted CANCELLED,
    its bus subscription is released, and no server failure is logged."""
    async with grpc_hub_with(make_settings, bus_subscriber_backlog=100) as gh:
        hub = gh.hub
        token = await gh.device("dev-1")
        before = gauge(hub.metrics.bus_subscribers)
        async with gh.client(token) as device:
            async with stalled_subscriber(gh):
                for n in range(50):
                    batch = readings_batch("dev-1", [1.0] * 1000, first_ms=MS + n * 1000)
                    await device.publish_batch(batch)
                    if gauge(hub.metrics.bus_dropped) > 0:
                        break  # the server is stuck writing to it
                assert gauge(hub.metrics.bus_dropped) > 0
            await wait_for(lambda: gauge(hub.metrics.bus_subscribers) == before)
            await wait_for(lambda: calls(gh, SUBSCRIBE) != {})
    assert calls(gh, SUBSCRIBE) == {"CANCELLED": 1.0}


@pytest.mark.services
async def test_readings_and_events_arrive_over_the_redis_bus(
    make_settings: Callable[..., Settings],
) -> None:
    await require_redis()
    prefix = unique_prefix("grpc-live")
    async with grpc_hub_with(make_settings, bus_url=REDIS_URL, bus_channel_prefix=prefix) as gh:
        token = await gh.device("dev-1")
        async with (
            gh.client() as client,
            reading(gh.hub, client.subscribe(presence=True)) as live,
            gh.client(token) as device,
        ):
            batch = readings_batch("dev-1", [20.5, 21.0], first_ms=MS)
            await device.publish_batch(batch)
            readings = await live.next()
            await gh.hub.devices.report_presence("dev-1", online=True, live=True)
            presence = await live.next()
    assert rows(readings.readings) == rows(batch)
    assert (presence.presence.device_id, presence.presence.presence) == (
        "dev-1",
        devices_pb2.PRESENCE_ONLINE,
    )


@sqlite_only
async def test_shutdown_ends_an_open_subscription_without_waiting_out_the_grace_period(
    make_settings: Callable[..., Settings],
) -> None:
    """A live stream never finishes by itself: on shutdown it must end at once (UNAVAILABLE,
    so its client reconnects elsewhere) rather than hold the server for the whole grace
    period meant for Publish streams, as the SSE stream already does. The grace period
    is 60 s here; a shutdown still waiting after 10 s is one waiting it out."""
    waited_out = False
    async with (
        open_hub(make_settings(grpc_grace_seconds=60)) as hub,
        contextlib.AsyncExitStack() as serving,
    ):
        gh = await serving.enter_async_context(serve_grpc(hub))
        async with gh.client() as client, asyncio.TaskGroup() as tasks:
            before = gauge(hub.metrics.bus_subscribers)
            ended = tasks.create_task(
                refused(anext(client.subscribe()), grpc.StatusCode.UNAVAILABLE),
                name="grpc-subscriber",
            )
            await wait_for(lambda: gauge(hub.metrics.bus_subscribers) > before)
            try:
                async with asyncio.timeout(10):
                    await serving.aclose()
                    await ended
            except TimeoutError:
                waited_out = True
                ended.cancel()
    assert not waited_out, "shutdown still waited for the live stream after 10 s"
