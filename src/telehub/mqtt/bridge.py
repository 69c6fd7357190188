"""The MQTT bridge: broker → core, acknowledging each message only after its commit.

gmqtt is used because it lets the acknowledgement wait for our processing
(MQTT 5, ``optimistic_acknowledgement=False``) and can answer with reason
codes; paho's manual acks would serve too but cost a thread hop per message;
aiomqtt acks before the handler runs and cannot give the guarantee
(see the README's MQTT section). Messages are taken in batches (gmqtt_acks.py): each batch is
committed in one call to the core, then acknowledged. gmqtt stays inside
telehub/mqtt.

The session is persistent (fixed client id, no clean start, a session expiry),
so messages that arrive while the bridge is down, or that it received but had
not acknowledged when it died, are delivered again when it comes back; the
store keeps one copy of each reading.

A broker can drop the bridge's subscriptions while the connection stays up
(amqtt did, when anyone connected with the bridge's client id and a clean
session); every message would then be acknowledged by the broker and never
stored. So the bridge publishes a heartbeat to a topic only it subscribes to;
when three in a row do not come back it says so (``telehub_mqtt_subscribed``
0, a warning) and subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from typing import Any

import gmqtt
import gmqtt.storage
import orjson
from gmqtt.mqtt.constants import MQTTv50, MQTTv311

from telehub.config import Settings
from telehub.core.commands import CommandService
from telehub.core.health import ComponentStates
from telehub.core.metrics import Metrics
from telehub.domain.commands import Command
from telehub.domain.readings import now_us, to_iso
from telehub.errors import ConfigError
from telehub.mqtt.address import BrokerAddress
from telehub.mqtt.gmqtt_acks import GmqttIntake
from telehub.mqtt.gmqtt_support import LOGIN_REFUSED, disconnect_quietly
from telehub.mqtt.message_handler import MqttInbound
from telehub.mqtt.topics import bridge_filters, command_topic, heartbeat_topic

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0
_SUBACK_TIMEOUT = 30.0
_PUBACK_TIMEOUT = 30.0
_GRANT_FAILED = 0x80
_MISSED_HEARTBEATS = 3
# Commands published before waiting for their PUBACKs: under every broker's
# receive maximum (Mosquitto's default max_inflight_messages is 20).
_COMMAND_WINDOW = 16


class MqttBridge:
    """Subscribes to device topics and feeds the core until ``stop``."""

    def __init__(
        self,
        *,
        settings: Settings,
        inbound: MqttInbound,
        commands: CommandService,
        metrics: Metrics,
        states: ComponentStates,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """``username``/``password`` default to the MQTT settings' (mqtt/service.py wires it)."""
        self._settings = settings
        self._inbound = inbound
        self._commands = commands
        self._metrics = metrics
        self._states = states
        self._address = BrokerAddress.of(settings)
        self._username = username or settings.mqtt_username
        secret = settings.mqtt_password
        self._password = password or (secret.get_secret_value() if secret else None)
        self._backoff = _BACKOFF_FIRST
        self._client: gmqtt.Client | None = None
        self._subscribed = asyncio.Event()
        self._subscribe_mid: int | None = None
        self._filters = bridge_filters(settings.mqtt_shared_group)
        self._heartbeat = heartbeat_topic(settings.mqtt_client_id)
        self._heartbeat_allowed = True
        self._heard_at = self._subscribed_at = 0.0
        self._connected = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        # gmqtt's store of our unacknowledged QoS 1 publishes (commands).
        self._outbox = gmqtt.storage.PersistentStorage()
        # Batches of messages go to the core and are acknowledged after commit.
        self._intake = GmqttIntake(self._inbound.handle_batch, intercept=self._heard)
        # Read when scraped: a set() per message would cost more than the count.
        metrics.mqtt_inflight.set_function(lambda: self._intake.messages_in_flight)

    @property
    def address(self) -> BrokerAddress:
        return self._address

    async def start(self) -> None:
        """Connect (retrying with backoff while the broker is unreachable) and subscribe."""
        client = self._new_client()
        self._client = client
        delay = _BACKOFF_FIRST
        while True:
            try:
                await client.connect(
                    self._address.host,
                    self._address.port,
                    ssl=self._address.tls_context(self._settings) or False,
                    keepalive=self._settings.mqtt_keepalive_seconds,
                    version=MQTTv50 if self._address.mqtt5 else MQTTv311,
                )
                break
            except ssl.SSLCertVerificationError as exc:
                await disconnect_quietly(client)
                raise ConfigError(
                    f"MQTT broker {self._address}: its TLS certificate is not trusted "
                    f"({exc.verify_message}); name its CA with TELEHUB_MQTT_TLS_CA_FILE"
                ) from None
            except OSError as exc:
                log.warning("MQTT broker %s unreachable (%s); retrying", self._address, exc)
            except gmqtt.mqtt.handler.MQTTConnectError as exc:
                if exc._code in LOGIN_REFUSED:
                    await disconnect_quietly(client)
                    raise ConfigError(
                        f"MQTT broker {self._address} refused the bridge's login ({exc}); "
                        "check TELEHUB_MQTT_USERNAME / TELEHUB_MQTT_PASSWORD"
                    ) from None
                log.warning(
                    "MQTT broker %s refused the connection (%s); retrying", self._address, exc
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, _BACKOFF_MAX)
        # Ready means subscribed: a message published after start() returns is ours.
        try:
            await asyncio.wait_for(self._subscribed.wait(), _SUBACK_TIMEOUT)
        except TimeoutError:
            raise ConfigError(
                f"MQTT broker {self._address} did not confirm the bridge's subscriptions"
            ) from None
        self._dispatcher = asyncio.create_task(self._dispatch_commands(), name="mqtt-commands")
        self._watchdog = asyncio.create_task(self._watch_subscriptions(), name="mqtt-heartbeat")

    async def stop(self, grace: float = 5.0) -> None:
        """Let in-flight messages commit (up to ``grace`` s), then disconnect.

        Anything still unacknowledged after that is delivered again by the
        broker on the next connection, and stored once.
        """
        client = self._client
        if client is None:
            return
        self._client = None
        for task in (self._dispatcher, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._intake.drain(grace)
        await disconnect_quietly(client)
        await self._intake.cancel()
        self._metrics.mqtt_connected.set(0)
        self._metrics.mqtt_subscribed.set(0)
        self._states.clear("mqtt")

    def _new_client(self) -> gmqtt.Client:
        properties: dict[str, Any] = {}
        if self._address.mqtt5:
            properties = {
                "session_expiry_interval": self._settings.mqtt_session_expiry_seconds,
                "receive_maximum": self._settings.mqtt_receive_maximum,
            }
        client = gmqtt.Client(
            self._settings.mqtt_client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            persistent_storage=self._outbox,
            logger=logging.getLogger("telehub.mqtt.gmqtt"),
            **properties,
        )
        if self._username:
            client.set_auth_credentials(self._username, self._password)
        # Before connect(): a persistent session's unacknowledged messages
        # arrive right after CONNACK, before any SUBSCRIBE.
        self._intake.attach(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay = _BACKOFF_FIRST
        return client

    def _on_connect(self, client: gmqtt.Client, flags: int, rc: int, properties: Any) -> None:
        log.info("MQTT bridge connected to %s as %s", self._address, self._settings.mqtt_client_id)
        self._connected = True
        self._states.set("mqtt", "subscribing")
        self._metrics.mqtt_connected.set(1)
        self._backoff = _BACKOFF_FIRST
        client.reconnect_delay = _BACKOFF_FIRST
        # Subscribing again on every connection restores the subscriptions
        # when the broker lost the session (restart without persistence).
        self._subscribe(client)

    def _subscribe(self, client: gmqtt.Client) -> None:
        subscriptions = [gmqtt.Subscription(f, qos=2) for f in self._filters]
        subscriptions.append(gmqtt.Subscription(self._heartbeat, qos=0))
        self._subscribed_at = time.monotonic()
        self._subscribe_mid = client.subscribe(subscriptions)

    def _on_subscribe(
        self, client: gmqtt.Client, mid: int, granted: tuple[int, ...], properties: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [
            f for f, code in zip(self._filters, granted, strict=False) if code >= _GRANT_FAILED
        ]
        if refused:
            log.error("MQTT broker %s refused subscriptions %s", self._address, refused)
            return
        if len(granted) > len(self._filters) and granted[-1] >= _GRANT_FAILED:
            if self._heartbeat_allowed:
                log.warning(
                    "MQTT broker %s refused the bridge's heartbeat topic %s: lost "
                    "subscriptions will go unnoticed (allow it in the broker's ACL)",
                    self._address,
                    self._heartbeat,
                )
            self._heartbeat_allowed = False
        self._metrics.mqtt_subscribed.set(1)
        self._states.set("mqtt", "subscribed")
        self._subscribed.set()

    def _heard(self, topic: str) -> bool:
        """The intake's first look at each message: True for our own heartbeat."""
        if topic != self._heartbeat:
            return False
        self._heard_at = time.monotonic()
        self._metrics.mqtt_subscribed.set(1)
        self._states.set("mqtt", "subscribed")
        return True

    async def _watch_subscriptions(self) -> None:
        """Publish a heartbeat each interval; subscribe again when three went unheard."""
        interval = self._settings.mqtt_heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            client = self._client
            if client is None or not self._connected or not self._heartbeat_allowed:
                continue
            client.publish(self._heartbeat, b"", qos=0)
            now, patience = time.monotonic(), _MISSED_HEARTBEATS * interval
            if now - max(self._heard_at, self._subscribed_at) > patience:
                log.warning(
                    "MQTT bridge: no heartbeat back from %s for %.0f s, its subscriptions "
                    "are gone; subscribing again",
                    self._address,
                    patience,
                )
                self._metrics.mqtt_subscribed.set(0)
                self._metrics.mqtt_resubscribes.inc()
                self._states.set("mqtt", "resubscribing")
                self._subscribe(client)

    def _on_disconnect(self, client: gmqtt.Client, packet: Any, exc: Any = None) -> None:
        self._connected = False
        self._metrics.mqtt_connected.set(0)
        self._metrics.mqtt_subscribed.set(0)
        if self._client is None:
            self._states.clear("mqtt")
            return
        log.warning("MQTT bridge lost %s; reconnecting in %.1f s", self._address, self._backoff)
        self._states.set("mqtt", "disconnected")
        client.reconnect_delay = self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    async def _dispatch_commands(self) -> None:
        """Hand the commands of online devices to the broker while connected.

        A command is claimed (pending or queued → sent) before it is published,
        and only while connected, so it goes out at most once; on MQTT 5 it
        carries a message expiry, so the broker never delivers it late either.
        A device's commands wait (queued) while it is offline; its coming online
        wakes this loop (CommandService.wake).
        """
        commands = self._commands
        poll = self._settings.command_poll_seconds
        while True:
            await commands.wait_due(poll)
            while (client := self._client) is not None and self._connected:
                try:
                    await commands.expire_due()
                    claimed = await commands.claim_due(limit=_COMMAND_WINDOW)
                except Exception:
                    log.warning("cannot read queued commands; retrying", exc_info=True)
                    await asyncio.sleep(poll)
                    break
                for command in claimed:
                    self._publish_command(client, command)
                if claimed:
                    # The broker takes only so many unacknowledged publishes
                    # (Mosquitto: 20); wait for this round's PUBACKs.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._outbox.wait_empty(), _PUBACK_TIMEOUT)
                if len(claimed) < _COMMAND_WINDOW:
                    break

    def _publish_command(self, client: gmqtt.Client, command: Command) -> None:
        # The broker counts whole seconds from the second it received the
        # message: this expiry ends at or before the command's own.
        now = now_us()
        remaining_s = max(1, command.expires_us // 1_000_000 - now // 1_000_000 - 1)
        payload = orjson.dumps(
            {
                "id": command.id,
                "name": command.name,
                "params": command.params,
                "expires_at": to_iso(command.expires_us),
            }
        )
        properties: dict[str, Any] = {}
        if self._address.mqtt5:
            properties = {
                "message_expiry_interval": remaining_s,
                "content_type": "application/json",
            }
        client.publish(command_topic(command.device_id, command.id), payload, qos=1, **properties)
        self._metrics.mqtt_commands_sent.inc()
