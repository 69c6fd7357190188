"""Every method of the REST SDKs, given bad input, fails the same way on ``Client`` and
``AsyncClient``: the same error class, status, problem type and named fields, whether
the client refuses it before sending (NaN, infinities, values JSON cannot carry, ids
that cannot be a path segment) or a real running hub does."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehub.client import AsyncClient, Client, ClientError, NotFound, ValidationFailed
from tests.live.support import LiveServer, live_server

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

# (method, what to call it with, the error both must raise)
Case = tuple[str, Callable[[Any], Any], type[ClientError]]
CASES: list[Case] = [
    # devices
    ("create_device", lambda c: c.create_device("Bad Id"), ValidationFailed),
    ("create_device", lambda c: c.create_device("x" * 129), ValidationFailed),
    (
        "create_device",
        lambda c: c.create_device("dev-9", attributes={"a": math.nan}),
        ValidationFailed,
    ),
    ("create_device", lambda c: c.create_device("dev-9", attributes={"a": T0}), ValidationFailed),
    ("get_device", lambda c: c.get_device("a b"), ValidationFailed),
    ("get_device", lambda c: c.get_device(".."), ValidationFailed),
    ("get_device", lambda c: c.get_device("ghost"), NotFound),
    ("list_devices", lambda c: c.list_devices(page_size=0), ValidationFailed),
    ("list_devices", lambda c: c.list_devices(page_size=10_001), ValidationFailed),
    (
        "update_device",
        lambda c: c.update_device("dev-1", attributes={"a": -math.inf}),
        ValidationFailed,
    ),
    ("update_device", lambda c: c.update_device("", name="x"), ValidationFailed),
    ("delete_device", lambda c: c.delete_device("."), ValidationFailed),
    ("delete_device", lambda c: c.delete_device("Bad Id"), ValidationFailed),
    ("rotate_device_token", lambda c: c.rotate_device_token("ghost"), NotFound),
    # telemetry
    ("send_telemetry", lambda c: c.send_telemetry("dev-1", {"t": math.nan}), ValidationFailed),
    ("send_telemetry", lambda c: c.send_telemetry("dev-1", {"t": math.inf}), ValidationFailed),
    (
        "send_telemetry",
        lambda c: c.send_telemetry("dev-1", [{"ts": T0.isoformat(), "values": {"t": -math.inf}}]),
        ValidationFailed,
    ),
    ("send_telemetry", lambda c: c.send_telemetry("dev-1", {"bad metric": 1}), ValidationFailed),
    (
        "send_telemetry",
        lambda c: c.send_telemetry("dev-1", {"t": 1}, ts=T0 + 1000 * DAY),
        ValidationFailed,
    ),
    ("send_telemetry", lambda c: c.send_telemetry("Bad Id", {"t": 1}), ValidationFailed),
    ("query", lambda c: c.query("dev-1", start=T0, end=T0), ValidationFailed),
    ("query", lambda c: c.query("dev-1", start=T0 + DAY, end=T0), ValidationFailed),
    ("query", lambda c: c.query("dev-1", metrics=["bad$"]), ValidationFailed),
    ("query", lambda c: c.query("dev-1", interval="1w"), ValidationFailed),
    ("query", lambda c: c.query("dev-1", interval="1ms", start=T0, end=T0 + DAY), ValidationFailed),
    ("query", lambda c: c.query("dev-1", interval="1m", agg="median"), ValidationFailed),
    ("query", lambda c: c.query("dev-1", limit=0), ValidationFailed),
    ("query", lambda c: c.query("Bad Id"), ValidationFailed),
    ("query", lambda c: c.query("dev-1", agg="max"), ValidationFailed),
    ("query", lambda c: c.query("dev-1", cursor="not-a-cursor"), ValidationFailed),
    ("query_pages", lambda c: c.query_pages("dev-1", agg="max"), ValidationFailed),
    ("query_pages", lambda c: c.query_pages("dev-1", metrics=["a b"]), ValidationFailed),
    ("query_all", lambda c: c.query_all("dev-1", page_size=0), ValidationFailed),
    ("query_all", lambda c: c.query_all("dev-1", interval="1s", agg="sum"), ValidationFailed),
    ("latest", lambda c: c.latest("Bad Id"), ValidationFailed),
    ("delete_state", lambda c: c.delete_state("Bad Id", "mode"), ValidationFailed),
    ("delete_state", lambda c: c.delete_state("dev-1", "nope"), NotFound),
    # commands
    (
        "send_command",
        lambda c: c.send_command("dev-1", "reboot", {"delay": math.nan}),
        ValidationFailed,
    ),
    ("send_command", lambda c: c.send_command("dev-1", "reboot", {"at": {1, 2}}), ValidationFailed),
    ("send_command", lambda c: c.send_command("dev-1", "bad name!"), ValidationFailed),
    ("send_command", lambda c: c.send_command("dev-1", "reboot", ttl_s=-1), ValidationFailed),
    ("get_command", lambda c: c.get_command("dev-1", ".."), ValidationFailed),
    ("get_command", lambda c: c.get_command("dev-1", "nope"), NotFound),
    ("list_commands", lambda c: c.list_commands("dev-1", page_size=0), ValidationFailed),
    ("wait_command", lambda c: c.wait_command("dev-1", "nope"), NotFound),
    (
        "bulk_command",
        lambda c: c.bulk_command("reboot", {"x": math.inf}, devices=["dev-1"]),
        ValidationFailed,
    ),
    ("bulk_command", lambda c: c.bulk_command("reboot"), ValidationFailed),
    ("get_batch", lambda c: c.get_batch(""), ValidationFailed),
    ("get_batch", lambda c: c.get_batch("nope"), NotFound),
    # rejected inputs and tokens
    ("rejected", lambda c: c.rejected(page_size=0), ValidationFailed),
    ("create_token", lambda c: c.create_token("x", scope="root"), ValidationFailed),
    ("create_token", lambda c: c.create_token(""), ValidationFailed),
    ("delete_token", lambda c: c.delete_token("nope"), NotFound),
    ("delete_token", lambda c: c.delete_token(".."), ValidationFailed),
    # live
    ("tail", lambda c: c.tail(metrics=["bad metric"]), ValidationFailed),
    ("tail", lambda c: c.tail(devices=["Bad Id"]), ValidationFailed),
    ("events", lambda c: c.events(types=["bogus"]), ValidationFailed),
]
# Methods that take no input to get wrong.
NO_BAD_INPUT = {"close", "info", "list_tokens"}  # they take no argument to get wrong


def _described(exc: BaseException) -> tuple[Any, ...]:
    assert isinstance(exc, ClientError), f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, ValidationFailed | NotFound)
    fields = [(e.get("pointer"), e.get("parameter")) for e in exc.errors]
    return type(exc), exc.status, exc.problem_type, fields


@pytest.fixture
async def server(hub: Any) -> AsyncIterator[LiveServer]:
    async with live_server(hub) as running, AsyncClient(running.base, token=running.admin) as c:
        await c.create_device("dev-1")
        yield running


def test_every_method_is_tried() -> None:
    public = {n for n, _ in inspect.getmembers(Client, inspect.isfunction) if n[0] != "_"}
    assert public - NO_BAD_INPUT == {name for name, _, _ in CASES}
    async_public = {n for n, _ in inspect.getmembers(AsyncClient, inspect.isfunction)}
    assert public <= async_public


@pytest.mark.parametrize(("method", "call", "kind"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_fails_alike_on_both_clients(
    server: LiveServer, method: str, call: Callable[[Any], Any], kind: type[ClientError]
) -> None:
    async def from_async() -> tuple[Any, ...]:
        async with AsyncClient(server.base, token=server.admin) as client:
            try:
                result = call(client)
                if inspect.isawaitable(result):
                    await result
                else:  # an iterator fails on its first item, or never does
                    await asyncio.wait_for(anext(result), 10)
            except Exception as exc:
                return _described(exc)
        raise AssertionError("AsyncClient raised nothing")

    def from_sync() -> tuple[Any, ...]:
        with Client(server.base, token=server.admin) as client:
            try:
                result = call(client)
                if inspect.isgenerator(result):
                    next(result)
            except Exception as exc:
                return _described(exc)
        raise AssertionError("Client raised nothing")

    got_async = await from_async()
    got_sync = await asyncio.to_thread(from_sync)  # the server runs on this loop

    assert got_sync == got_async
    assert got_async[0] is kind
    if kind is ValidationFailed:
        assert got_async[3], "a refusal names the offending field"
