"""Simulated devices on MQTT: one gmqtt client per device, logged in with its token.

Each device behaves as the MQTT page asks of a real one: it registers
``offline`` (retained) as its last will, publishes ``online`` (retained) to its
status topic once connected, and ``offline`` before it disconnects, so the hub
shows it online for as long as the run lasts (and sends it commands: the hub
sends commands only to online devices). Telemetry goes out at QoS 1 and
counts as acknowledged when its PUBACK arrives. gmqtt has no PUBACK callback,
so each client gets a store of in-flight messages that also resolves a future
per packet id when gmqtt drops the packet on its PUBACK. Devices answer
commands (``commands/+``) after a short delay; a configurable share answer
``error``. Incoming commands wait in a bounded queue for the one responder task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import gmqtt
import gmqtt.storage
import orjson
from gmqtt.mqtt.constants import MQTTv311

from telehub.mqtt.gmqtt_support import disconnect_quietly
from telehub.mqtt.topics import ROOT, TopicKind, command_topic
from telehub.sim.stats import Stats
from telehub.sim.transports import Ack, SimDevice, Values

log = logging.getLogger(__name__)

_CONNECT_WINDOW = 16
_SUBACK_TIMEOUT = 10.0
_COMMAND_BACKLOG = 1_000


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/{TopicKind.STATUS.value}"


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` or ``mqtts://host:port`` → (host, port, TLS); the port
    defaults to 1883 or 8883."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class PubackStore:
    """gmqtt's in-flight store, plus a future per packet that resolves on its PUBACK."""

    def __init__(self) -> None:
        self._inner = gmqtt.storage.PersistentStorage()
        self._next: asyncio.Future[None] | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def expect(self) -> asyncio.Future[None]:
        """The future of the next QoS 1 publish: call just before ``client.publish``."""
        self._next = asyncio.get_running_loop().create_future()
        return self._next

    def push_message(self, mid: int, raw_package: bytes) -> None:
        if self._next is not None:
            self._waiting[mid] = self._next
            self._next = None
        self._inner.push_message(mid, raw_package)

    def remove_message_by_mid(self, mid: int) -> None:
        future = self._waiting.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)
        self._inner.remove_message_by_mid(mid)

    @property
    def is_empty(self) -> bool:
        return bool(self._inner.is_empty)

    async def wait_empty(self) -> None:
        await self._inner.wait_empty()

    def clear(self) -> None:
        # A clean session drops what was in flight: those PUBACKs never come.
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("MQTT session lost before PUBACK"))
        self._waiting.clear()
        self._inner.clear()

    def get_all(self) -> list[tuple[int, bytes]]:
        result: list[tuple[int, bytes]] = self._inner.get_all()
        return result


@dataclass(frozen=True, slots=True)
class _Command:
    device_id: str
    command_id: str
    due: float


class MqttTransport:
    """Every device connected; ``send`` returns after the PUBACK; ``serve`` answers commands."""

    def __init__(
        self,
        url: str,
        devices: list[SimDevice],
        *,
        stats: Stats,
        timeout: float,
        fail_share: float = 0.1,
        ack_delay: float = 0.2,
        seed: int = 0,
    ) -> None:
        self._host, self._port, self._tls = parse_mqtt_url(url)
        self._devices = devices
        self._stats = stats
        self._timeout = timeout
        self._fail_share = fail_share
        self._ack_delay = ack_delay
        self._rng = random.Random(seed)
        self._clients: dict[str, tuple[gmqtt.Client, PubackStore]] = {}
        self._commands: asyncio.Queue[_Command] = asyncio.Queue(_COMMAND_BACKLOG)

    async def __aenter__(self) -> Self:
        pending = iter(self._devices)

        async def worker() -> None:
            for device in pending:
                await self._connect(device)

        try:
            async with asyncio.TaskGroup() as group:
                for n in range(min(_CONNECT_WINDOW, len(self._devices))):
                    group.create_task(worker(), name=f"sim-mqtt-connect-{n}")
        except BaseException:
            await self._disconnect_all()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._disconnect_all()

    async def send(self, device: SimDevice, values: Values, ts: datetime) -> Ack:
        client, store = self._clients[device.device_id]
        payload = orjson.dumps({"ts": ts.isoformat(), "values": values})
        topic = f"{ROOT}/{device.device_id}/telemetry"
        await self._publish_acked(client, store, topic, payload, retain=False)
        return Ack(readings=len(values))

    async def serve(self) -> None:
        """Answer commands until cancelled: after ``ack_delay``, ok or (a share) error."""
        while True:
            command = await self._commands.get()
            wait = command.due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            entry = self._clients.get(command.device_id)
            if entry is None:
                continue
            failed = self._rng.random() < self._fail_share
            body: dict[str, Any] = (
                {"status": "error", "result": {"reason": "simulated failure"}}
                if failed
                else {"status": "ok", "result": {"simulated": True}}
            )
            topic = command_topic(command.device_id, command.command_id) + "/ack"
            entry[0].publish(topic, orjson.dumps(body), qos=1)
            if failed:
                self._stats.commands_error += 1
            else:
                self._stats.commands_ok += 1

    async def _connect(self, device: SimDevice) -> None:
        store = PubackStore()
        status = status_topic(device.device_id)
        client = gmqtt.Client(
            device.device_id,
            clean_session=True,
            persistent_storage=store,
            will_message=gmqtt.Message(status, b"offline", qos=1, retain=True),
            logger=logging.getLogger("telehub.sim.gmqtt"),
        )
        client.set_auth_credentials(device.device_id, device.token)
        subscribed = asyncio.Event()
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: subscribed.set()
        self._clients[device.device_id] = (client, store)
        await client.connect(self._host, self._port, ssl=self._tls, version=MQTTv311, keepalive=60)
        client.subscribe(f"{ROOT}/{device.device_id}/commands/+", qos=1)
        await asyncio.wait_for(subscribed.wait(), _SUBACK_TIMEOUT)
        # Only now: a command sent once it is online finds the subscription in place.
        await self._publish_acked(client, store, status, b"online", retain=True)

    async def _publish_acked(
        self, client: gmqtt.Client, store: PubackStore, topic: str, payload: bytes, *, retain: bool
    ) -> None:
        puback = store.expect()
        client.publish(topic, payload, qos=1, retain=retain)
        await asyncio.wait_for(puback, self._timeout)

    def _on_message(
        self, client: gmqtt.Client, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        # Only queue it: the responder task does the work.
        parts = topic.split("/")
        if len(parts) == 6 and parts[4] == "commands":
            item = _Command(parts[3], parts[5], time.monotonic() + self._ack_delay)
            try:
                self._commands.put_nowait(item)
            except asyncio.QueueFull:
                self._stats.record_error("command_backlog_full")
        return 0

    async def _disconnect_all(self) -> None:
        clients = list(self._clients.items())
        self._clients.clear()
        for start in range(0, len(clients), _CONNECT_WINDOW):
            await asyncio.gather(
                *(self._leave(*entry) for entry in clients[start : start + _CONNECT_WINDOW])
            )

    async def _leave(self, device_id: str, entry: tuple[gmqtt.Client, PubackStore]) -> None:
        """Say ``offline`` (a clean DISCONNECT sends no will), then disconnect."""
        client, store = entry
        if client.is_connected:
            try:
                await self._publish_acked(
                    client, store, status_topic(device_id), b"offline", retain=True
                )
            except (TimeoutError, ConnectionError):
                log.debug("%s: offline not acknowledged", device_id, exc_info=True)
        await disconnect_quietly(client)
