"""The embedded development broker: amqtt inside ``telehub serve``, with device logins.

amqtt speaks MQTT 3.1.1 only and acknowledges a device's QoS 1 message when
it receives it, before the bridge has committed it; it keeps sessions in
memory. That is fine for development and tests, not for production (use
Mosquitto or EMQX: see the README).

Devices log in with their id as user name and their token as password. Each
may publish only under its own ``telehub/v1/devices/{id}/`` and subscribe only
to its own commands; a refused publish is recorded as rejected input. The
bridge logs in with a secret made at start-up that never leaves the process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from telehub.errors import (
    FieldError,
    InvalidInput,
    TopicNotAllowed,
    Unauthenticated,
)
from telehub.mqtt.topics import ROOT, commands_prefix, parse_topic
from telehub.net import bind
from telehub.runtime import Hub

log = logging.getLogger(__name__)

BRIDGE_USERNAME = "$telehub-bridge"


class EmbeddedAccess:
    """Who may log in to the embedded broker, and which topics each login may use."""

    def __init__(self, hub: Hub, bridge_secret: str) -> None:
        self._hub = hub
        self._bridge_secret = bridge_secret

    async def login(self, username: str | None, password: str | None) -> bool:
        if not username or not password:
            return False
        if username == BRIDGE_USERNAME:
            return secrets.compare_digest(password, self._bridge_secret)
        try:
            principal = await self._hub.auth.authenticate(password)
        except Unauthenticated:
            return False
        return principal.device_id == username

    async def allowed(self, username: str | None, topic: str, action: str) -> bool:
        if username == BRIDGE_USERNAME:
            return True
        if username is None:
            return False
        if action == Action.PUBLISH:
            # The topics the bridge accepts, and only for this device.
            try:
                ok = parse_topic(topic).device_id == username
            except InvalidInput:
                ok = False
            if not ok:
                await self._record_refused(username, topic)
            return ok
        # Subscribing (a filter) and receiving (a topic): only its own commands.
        return topic.startswith(commands_prefix(username))

    async def _record_refused(self, device_id: str, topic: str) -> None:
        where = (
            "another device's topic"
            if topic.startswith(ROOT + "/")
            else "a topic outside telehub/v1/devices"
        )
        error = TopicNotAllowed(
            f"device {device_id!r} may not publish to {topic[:200]!r} ({where})",
            [FieldError(detail="not this device's topic", parameter="topic")],
        )
        await self._hub.rejected.record(
            transport="mqtt", device_id=device_id, error=error, payload=topic.encode()
        )


class TelehubAuthPlugin(BaseAuthPlugin):
    """amqtt plugin: logins checked against telehub's device tokens."""

    @dataclass
    class Config:
        access: Any

    async def authenticate(self, *, session: Any) -> bool | None:
        access: EmbeddedAccess = self.context.config.access
        return await access.login(session.username, session.password)


class TelehubTopicPlugin(BaseTopicPlugin):
    """amqtt plugin: each device stays inside its own topics."""

    @dataclass
    class Config:
        access: Any

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        access: EmbeddedAccess = self.context.config.access
        if session is None or topic is None or action is None:
            return False
        return await access.allowed(session.username, topic, action)


class _Broker(Broker):
    """amqtt's broker, without its two leaks.

    On every connect, amqtt 0.12.1 replays the retained messages that match
    *any* client's subscriptions to the connecting client, past the topic
    plugin: a device would get every device's retained status. Only the
    client's own subscriptions may replay to it.

    And on some disconnect paths (a client gone while its session is taken
    over, or during shutdown) it never closes the connection's socket; every
    connection is tracked here and closed when the broker stops.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._writers: set[asyncio.StreamWriter] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self._writers.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def shutdown(self) -> None:
        await super().shutdown()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        subscribers = self._subscriptions.get(subscription[0], [])
        if any(other.client_id == session.client_id for other, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class EmbeddedBroker:
    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        self.host = settings.mqtt_embedded_host
        self.port = settings.mqtt_embedded_port
        self.bridge_secret = secrets.token_urlsafe(32)
        access = EmbeddedAccess(hub, self.bridge_secret)
        self._broker = _Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    f"{__name__}.TelehubAuthPlugin": {"access": access},
                    f"{__name__}.TelehubTopicPlugin": {"access": access},
                },
            }
        )

    async def start(self) -> None:
        # Probed first: a taken port is a clear error, not an amqtt traceback.
        bind(
            self.host,
            self.port,
            setting="TELEHUB_MQTT_EMBEDDED_PORT",
            flag="--mqtt-port",
            hint=" (or use the broker that has it: TELEHUB_MQTT_URL=mqtt://host:port)",
        ).close()
        await self._broker.start()
        log.info("embedded MQTT broker (amqtt, development only) on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        await self._broker.shutdown()
