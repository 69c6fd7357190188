"""The embedded broker: amqtt inside ``telehub serve``, acknowledging after commit.

amqtt speaks MQTT 3.1.1 only and keeps sessions in memory. On its own it
acknowledges a device's QoS 1 message on receipt and loses what it had not
relayed when the device disconnects; here a device's publish goes straight
to the core and is acknowledged after its commit (embedded_publish.py), so
what a device got a PUBACK for is stored, exactly once, and survives kill -9.

Around amqtt, this subclass also:
- frames each connection's bytes itself (packet_reader.py): packets over the
  size limit are refused before they are read, a PUBLISH to a wildcard topic
  ends its connection, and a connection with too many publishes in flight is
  read no further until they commit;
- checks the login and client id before amqtt looks at sessions
  (embedded_access.py): amqtt would delete or take over the session a
  refused CONNECT names, the bridge's included;
- replays retained messages only to the client that subscribed, and closes
  every connection's socket when it stops (amqtt 0.12.1 leaks both);
- marks a command delivered when the device's PUBACK for it arrives
  (embedded_delivery.py);
- disconnects a device whose token is rotated or which is deleted (a live
  session of its credential): nothing it sent is read any more, and a
  deleted device leaves no will, no session and no QoS 2 state behind for a
  device made later with the same id.

These overrides use amqtt internals; pyproject pins amqtt to 0.12.x and
``tests/mqtt/test_embedded_internals.py`` fails when they change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from telehub.config import Settings
from telehub.core.auth import Authenticator
from telehub.core.commands import CommandService
from telehub.core.ingest_gate import IngestGate
from telehub.core.metrics import Metrics
from telehub.core.sessions import Session, SessionRegistry
from telehub.domain.live import CredentialKind, Revoked
from telehub.errors import InvalidInput
from telehub.listeners import bind
from telehub.mqtt.embedded_access import EmbeddedAccess
from telehub.mqtt.embedded_delivery import CommandDeliveries
from telehub.mqtt.embedded_publish import DevicePublishes
from telehub.mqtt.message_handler import MqttInbound
from telehub.mqtt.packet_reader import PUBLISH_OVERHEAD, PacketReader

log = logging.getLogger(__name__)

# Publishes of one connection waiting for their commit before it is read further.
_MAX_IN_FLIGHT = 256


@dataclass(slots=True)
class _Login:
    """A device's connection, as a live session of the token it logged in with."""

    device_id: str
    packets: PacketReader
    writer: asyncio.StreamWriter
    client_session: Any  # amqtt's Session, replaced by a stored one on a resumed session
    publishes: DevicePublishes
    registration: Session | None = None
    deleted: bool = False

    def revoke(self, revoked: Revoked) -> None:
        if revoked.keep is None:  # the device is deleted, not its token rotated
            self.deleted = True
            self.client_session.will_flag = False
            self.publishes.forget(self.device_id)
        self.packets.end()
        self.writer.transport.abort()


class _Broker(Broker):
    def __init__(
        self,
        config: dict[str, Any],
        *,
        ports: EmbeddedPorts,
        access: EmbeddedAccess,
        publishes: DevicePublishes,
    ) -> None:
        super().__init__(config)
        self._gate = ports.gate
        self._registry = ports.sessions  # live sessions; amqtt's own are self._sessions
        self._rejected_packets = ports.metrics.mqtt_messages.labels(
            kind="packet", outcome="rejected"
        )
        self._access = access
        self._publishes = publishes
        self._deliveries = CommandDeliveries(ports.commands)
        self._writers: dict[PacketReader, asyncio.StreamWriter] = {}
        self._logins: dict[PacketReader, _Login] = {}
        self._max_packet = ports.settings.max_body_bytes + PUBLISH_OVERHEAD
        self._violations: set[asyncio.Task[None]] = set()
        self._forgetting: set[asyncio.Task[None]] = set()
        self.stop_listening = ports.sessions.listen(self._revoked)

    def _revoked(self, revoked: Revoked) -> None:
        """A deleted device's stored session goes too, also when it is offline: a new
        device with the same id must not resume its subscriptions and queued commands.
        (A connected one is removed when its connection ends: _Login, _logged_out.)"""
        if revoked.kind is not CredentialKind.DEVICE or revoked.keep is not None:
            return
        stored = self._sessions.get(revoked.id)
        if stored is None or stored[0].transitions.is_connected():
            return
        self._publishes.forget(revoked.id)
        task = asyncio.create_task(self._delete_session(revoked.id), name="mqtt-forget-session")
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        packets = PacketReader(
            reader,
            max_packet_bytes=self._max_packet,
            max_in_flight=_MAX_IN_FLIGHT,
            on_violation=self._violation,
        )
        self._writers[packets] = writer
        try:
            await self._client_connected(listener_name, packets, StreamWriterAdapter(writer))
        finally:
            self._writers.pop(packets, None)
            writer.close()
            login = self._logins.pop(packets, None)
            if login is not None:
                await self._logged_out(login)

    async def _logged_out(self, login: _Login) -> None:
        if login.registration is not None:
            login.registration.close()
        stored = self._sessions.get(login.device_id)
        if login.deleted and stored is not None and stored[0] is login.client_session:
            await self._delete_session(login.device_id)  # its subscriptions and queue

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Any]:
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except NoDataError as exc:  # gone before a whole CONNECT: a port probe, say
            raise AMQTTError(exc) from None
        admitted = await self._access.admit(session.client_id, session.username, session.password)
        if isinstance(admitted, int):
            await ConnackPacket.build(0, admitted).to_stream(writer)
            await writer.close()
            raise MQTTError(f"CONNECT refused with code {admitted}")
        login = None
        if admitted is not None:  # a device (None: the bridge)
            # Registered before any other await: a revocation from now on reaches it.
            login = _Login(
                session.client_id, reader, self._writers[reader], session, self._publishes
            )
            self._logins[reader] = login
            login.registration = self._registry.register(
                admitted, transport="mqtt", on_revoke=login.revoke
            )
        existing = self._sessions.get(session.client_id)
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif existing is not None:
            # The stored session, carrying this connection's login, will and keep-alive.
            stored = existing[0]
            for field in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive"):
                setattr(stored, field, getattr(session, field))
            stored.username, stored.password = session.username, session.password
            session, session.parent = stored, 1
        else:
            session.parent = 0
        if login is not None:
            login.client_session = session
            if login.deleted:
                session.will_flag = False
            reader.device_id = session.username
            self._publishes.attach(handler, reader, session.username, clean=session.clean_session)
            self._deliveries.attach(handler, session.username)
        return handler, session

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        return True  # admitted in _initialize_client_session, before any session changed

    async def shutdown(self) -> None:
        await super().shutdown()
        for writer in list(self._writers.values()):
            writer.close()

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        # amqtt replays to a connecting client the retained messages of *any*
        # client's subscriptions, past the topic plugin.
        subscribers = self._subscriptions.get(subscription[0], [])
        if any(other.client_id == session.client_id for other, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)

    def _violation(self, error: InvalidInput, device_id: str | None, excerpt: bytes) -> None:
        self._rejected_packets.inc()
        task = asyncio.create_task(
            self._gate.reject(transport="mqtt", device_id=device_id, error=error, payload=excerpt),
            name="mqtt-record-violation",
        )
        self._violations.add(task)
        task.add_done_callback(self._violations.discard)

    async def finish_background(self, grace: float) -> None:
        """Wait for the rejection records and session clean-ups still being written, so
        that none is cut off mid-query (its connection left open) when storage closes."""
        pending = self._violations | self._forgetting
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def probe_port(host: str, port: int) -> None:
    """ConfigError, naming the setting and flag that move it, if the broker's port is taken."""
    bind(
        host,
        port,
        setting="TELEHUB_MQTT_EMBEDDED_PORT",
        flag="--mqtt-port",
        hint=" (or use the broker that has it: TELEHUB_MQTT_URL=mqtt://host:port)",
    ).close()


@dataclass(frozen=True, slots=True)
class EmbeddedPorts:
    """The core services the embedded broker uses (mqtt/service.py fills it from the hub)."""

    settings: Settings
    inbound: MqttInbound
    auth: Authenticator
    gate: IngestGate
    sessions: SessionRegistry
    commands: CommandService
    metrics: Metrics


class EmbeddedBroker:
    def __init__(self, ports: EmbeddedPorts) -> None:
        settings = ports.settings
        self.host = settings.mqtt_embedded_host
        self.port = settings.mqtt_embedded_port
        self.bridge_secret = secrets.token_urlsafe(32)
        access = EmbeddedAccess(
            auth=ports.auth,
            gate=ports.gate,
            bridge_secret=self.bridge_secret,
            bridge_client_id=settings.mqtt_client_id,
        )
        self.publishes = DevicePublishes(ports.inbound, access)
        self._broker = _Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {"telehub.mqtt.embedded_access.TelehubTopicPlugin": {"access": access}},
            },
            ports=ports,
            access=access,
            publishes=self.publishes,
        )

    async def start(self) -> None:
        # Probed first: a taken port is a clear error, not an amqtt traceback.
        probe_port(self.host, self.port)
        await self._broker.start()
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%d", self.host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        """Let in-flight publishes commit and be acknowledged, then stop the broker."""
        self._broker.stop_listening()
        await self.publishes.drain(grace)
        await self._broker.shutdown()
        await self.publishes.cancel()
        await self._broker.finish_background(grace)
