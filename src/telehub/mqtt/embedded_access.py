"""Who may connect to the embedded broker, with which client id, and to which topics.

Devices log in with their id as user name and their token as password, and
their client id must be their device id: a client id names a session, and
whoever connects with it takes the session over (and with a clean session,
deletes it and its subscriptions). So no device can use another's id, and the
bridge's id is refused to all of them. The bridge logs in with a secret made
at start-up that never leaves the process.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseTopicPlugin

from telehub.core.auth import Authenticator
from telehub.core.ingest_gate import IngestGate
from telehub.domain.devices import Principal
from telehub.errors import (
    ClientIdNotAllowed,
    FieldError,
    InvalidInput,
    TopicNotAllowed,
    Unauthenticated,
)
from telehub.mqtt.topics import ACCEPTED_SUFFIXES, ROOT, commands_prefix, parse_topic

BRIDGE_USERNAME = "$telehub-bridge"

# CONNACK return codes of MQTT 3.1.1 (3.2.2.3).
IDENTIFIER_REJECTED = 2
BAD_LOGIN = 4
NOT_AUTHORIZED = 5


class EmbeddedAccess:
    def __init__(
        self,
        *,
        auth: Authenticator,
        gate: IngestGate,
        bridge_secret: str,
        bridge_client_id: str,
    ) -> None:
        """``bridge_client_id`` is refused to devices: it names the bridge's session."""
        self._auth = auth
        self._gate = gate
        self._bridge_secret = bridge_secret
        self._bridge_client_id = bridge_client_id

    async def admit(
        self, client_id: str, username: str | None, password: str | None
    ) -> Principal | int | None:
        """The CONNACK code if this login may not connect with this client id; else the
        device's principal, or None for the bridge.

        Checked before the broker touches any session: a refused CONNECT must
        not take over or delete the session its client id names.
        """
        if not username or not password:
            return NOT_AUTHORIZED
        if username == BRIDGE_USERNAME:
            return None if secrets.compare_digest(password, self._bridge_secret) else BAD_LOGIN
        try:
            principal = await self._auth.authenticate(password)
        except Unauthenticated:
            return BAD_LOGIN
        if principal.device_id != username:
            return BAD_LOGIN
        if client_id != username or client_id == self._bridge_client_id:
            await self._gate.reject(
                transport="mqtt",
                device_id=username,
                error=ClientIdNotAllowed(
                    f"device {username!r} connected with client id {client_id[:80]!r}; "
                    f"it must use its device id {username!r} as its client id",
                    [FieldError(detail="must be the device id", parameter="client_id")],
                ),
                payload=client_id.encode()[:200],
            )
            return IDENTIFIER_REJECTED
        return principal

    async def allowed(self, username: str | None, topic: str, action: str) -> bool:
        if username == BRIDGE_USERNAME:
            return True
        if username is None:
            return False
        if action == Action.PUBLISH:
            # The topics the hub accepts, and only for this device.
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
        """Record a refused publish, saying which of three mistakes it was (what matters
        first: a record keeps the first 200 characters)."""
        own = f"{ROOT}/{device_id}/"
        if topic.startswith(own):
            detail = (
                f"unknown topic suffix {topic.removeprefix(own)[:80]!r} (accepted: "
                f"{ACCEPTED_SUFFIXES}) under the device's own prefix {own}"
            )
            field = "unknown topic suffix"
        else:
            where = (
                "another device's topic"
                if topic.startswith(ROOT + "/")
                else f"a topic outside {ROOT}"
            )
            detail = f"device {device_id!r} may not publish to {topic[:200]!r} ({where})"
            field = "not this device's topic"
        error = TopicNotAllowed(detail, [FieldError(detail=field, parameter="topic")])
        await self._gate.reject(
            transport="mqtt", device_id=device_id, error=error, payload=topic.encode()
        )


class TelehubTopicPlugin(BaseTopicPlugin):
    """amqtt plugin: each device subscribes to, and receives, only its own commands."""

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
