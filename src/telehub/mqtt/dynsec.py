"""Device logins and ACLs in Mosquitto's dynamic-security plugin.

On a production Mosquitto the broker decides who may connect and which
topics each login may use, so telehub keeps the plugin in step with its
devices: a device logs in with its id and token and may use only
``telehub/v1/devices/{its id}/…``; the bridge may read every device's uplink
and send commands. gmqtt stays inside this module.

- One role per device (``telehub-device-{id}``; the roles' ACLs are in
  dynsec_acls.py): the 2.0 plugin does not substitute %u in ACL topics.
- Provisioning needs the plain token (the plugin hashes it; telehub keeps
  only a hash), so it happens on create and rotate: a device that predates
  the plugin gets its login at its next rotation.
- Requests are JSON on ``$CONTROL/dynamic-security/v1``; answers go to every
  admin subscribed to ``…/response``, so each command carries a
  ``correlationData`` naming our request.
- Changing a client (password, roles) or deleting it disconnects its live
  sessions (reason 0x98), as a rotated or revoked token needs; changing a
  role's ACLs disconnects nobody.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
from types import TracebackType
from typing import Any, Self

import gmqtt
from gmqtt.mqtt.constants import MQTTv50

from telehub.config import Settings
from telehub.domain.rules import BAD_DEVICE_ID, is_device_id
from telehub.errors import ConfigError, FieldError, InvalidInput, TelehubError
from telehub.mqtt.address import BrokerAddress
from telehub.mqtt.dynsec_acls import (
    BRIDGE_ROLE,
    Acl,
    acl_set,
    bridge_acls,
    device_acls,
    device_role,
)
from telehub.mqtt.gmqtt_support import LOGIN_REFUSED, disconnect_quietly

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

_GRANT_FAILED = 0x80
_RECONNECT_DELAY = 1.0

Command = dict[str, Any]
Response = dict[str, Any]


class DynsecError(TelehubError):
    """The plugin refused a command, or could not be reached or did not answer.

    Every operation here is idempotent, so the caller may simply retry.
    """

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class DynsecProvisioner:
    """An admin client of the dynamic-security plugin that owns telehub's logins.

    Use as ``async with DynsecProvisioner(...) as dynsec:``; ``start`` fails
    fast (ConfigError for refused admin credentials, DynsecError when the
    broker is unreachable) rather than retrying, because provisioning runs on
    behalf of a request that should hear why it failed. Once started, a lost
    connection is re-established in the background.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._tls = tls
        self._timeout = timeout
        self.address = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
        self._client: gmqtt.Client | None = None
        self._ready = asyncio.Event()
        self._refused = False
        self._subscribe_mid: int | None = None
        self._pending: dict[str, asyncio.Future[list[Response]]] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect as the admin and subscribe to the plugin's responses."""
        client = gmqtt.Client(
            f"telehub-dynsec-{secrets.token_hex(6)}",
            clean_session=True,
            logger=logging.getLogger("telehub.mqtt.gmqtt"),
        )
        client.set_auth_credentials(self._username, self._password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay = _RECONNECT_DELAY
        try:
            await asyncio.wait_for(
                client.connect(self._host, self._port, ssl=self._tls or False, version=MQTTv50),
                self._timeout,
            )
            await self._wait_ready()
        except gmqtt.mqtt.handler.MQTTConnectError as exc:
            client.stop_reconnect()
            await disconnect_quietly(client)
            if exc._code in LOGIN_REFUSED:
                raise ConfigError(
                    f"MQTT broker {self.address} refused the dynamic-security admin "
                    f"login {self._username!r} ({exc}); check its username and password"
                ) from None
            raise DynsecError(f"MQTT broker {self.address} refused the admin ({exc})") from None
        except BaseException as exc:
            self._ready.clear()
            await disconnect_quietly(client)
            if isinstance(exc, TimeoutError):  # before OSError, its base class
                raise DynsecError(
                    f"MQTT broker {self.address} did not answer within {self._timeout} s"
                ) from None
            if isinstance(exc, OSError):
                raise DynsecError(f"MQTT broker {self.address} unreachable ({exc})") from None
            raise
        # Only now: until here a disconnect is a failed start, not a lost connection.
        self._client = client

    async def close(self) -> None:
        """Disconnect; requests still waiting fail with DynsecError."""
        client, self._client = self._client, None
        self._ready.clear()
        self._fail_pending("the provisioner was closed")
        if client is not None:
            await disconnect_quietly(client)

    async def ensure_roles(self) -> None:
        """Create the bridge role or restore its ACLs; device roles come with each device."""
        await self._upsert(BRIDGE_ROLE, bridge_acls(), "telehub bridge")

    async def ensure_bridge(self, username: str, password: str) -> None:
        """Give the bridge a login with the bridge role (and the role itself).

        When the login exists its password and roles are set again, which
        disconnects bridges logged in as it; they reconnect (persistent
        sessions lose nothing).
        """
        await self._upsert(
            BRIDGE_ROLE, bridge_acls(), "telehub bridge", client=(username, password)
        )

    async def device_created(self, device_id: str, token: str) -> None:
        """Give a device its login (id + token), bound to its id as client id, and its role.

        The binding keeps a device from connecting with another client's id,
        which would take over that session (the bridge's, say). An existing
        login gets this password, binding and role again, which disconnects
        its live sessions.
        """
        _check_device_id(device_id)
        await self._upsert(
            device_role(device_id),
            device_acls(device_id),
            f"telehub device {device_id}",
            client=(device_id, token),
            clientid=device_id,
        )

    async def device_token_rotated(self, device_id: str, token: str) -> None:
        """Make the new token the device's password; sessions on the old one are cut.

        The same as ``device_created``, so that rotating a token also gives a
        login to a device that never had one (created before provisioning).
        """
        await self.device_created(device_id, token)

    async def device_deleted(self, device_id: str) -> None:
        """Remove a device's login (cutting its sessions) and its role; absent is fine."""
        _check_device_id(device_id)
        await self._execute(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            tolerate={"Client not found", "Role not found"},
        )

    async def _upsert(
        self,
        rolename: str,
        acls: list[Acl],
        textname: str,
        *,
        client: tuple[str, str] | None = None,
        clientid: str | None = None,
    ) -> None:
        """Create a role (and a client holding it) in one round trip; converge
        whatever already existed in a second, only when something did."""
        commands: list[Command] = [
            {"command": "createRole", "rolename": rolename, "textname": textname, "acls": acls},
            {"command": "getRole", "rolename": rolename},
        ]
        client_fields: Command = {}
        if client is not None:
            username, password = client
            client_fields = {
                "username": username,
                "password": password,
                "roles": [{"rolename": rolename, "priority": 0}],
            }
            if clientid is not None:
                client_fields["clientid"] = clientid
            commands.append({"command": "createClient", "textname": textname, **client_fields})
        responses = await self._execute(
            commands, tolerate={"Role already exists", "Client already exists"}
        )
        fixes: list[Command] = []
        role = responses[1].get("data", {}).get("role", {})
        if acl_set(role.get("acls", [])) != acl_set(acls):
            # A role that predates us or was edited by hand: ACLs back to ours.
            fixes.append({"command": "modifyRole", "rolename": rolename, "acls": acls})
        if client is not None and responses[2].get("error"):
            # modifyClient, not addClientRole: 2.0.11 answers "Internal error"
            # when adding a role the client already has.
            fixes.append({"command": "modifyClient", **client_fields})
        if fixes:
            await self._execute(fixes)

    async def _execute(
        self, commands: list[Command], *, tolerate: set[str] | frozenset[str] = frozenset()
    ) -> list[Response]:
        """Send commands as one request; their responses, in order.

        Raises DynsecError for the first response whose error is not tolerated.
        """
        client = self._client
        if client is None:
            raise DynsecError("the dynamic-security provisioner is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        await self._wait_ready()  # after a reconnect, until resubscribed
        request = secrets.token_hex(8)
        tagged = [cmd | {"correlationData": f"{request}:{i}"} for i, cmd in enumerate(commands)]
        future: asyncio.Future[list[Response]] = loop.create_future()
        self._pending[request] = future
        try:
            client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            responses = await asyncio.wait_for(future, max(deadline - loop.time(), 0.0))
        except TimeoutError:
            raise DynsecError(
                f"no answer from the dynamic-security plugin on {self.address} within "
                f"{self._timeout} s: is it loaded, and does {self._username!r} hold its "
                "admin role?"
            ) from None
        finally:
            self._pending.pop(request, None)
        if len(responses) != len(commands):
            raise DynsecError(f"{len(commands)} dynamic-security commands got {responses!r}")
        for cmd, response in zip(commands, responses, strict=True):
            error = response.get("error")
            if error and error not in tolerate:
                target = cmd.get("username") or cmd.get("rolename") or ""
                raise DynsecError(
                    f"dynamic-security {cmd['command']} {target!r} failed: {error}",
                    command=str(cmd["command"]),
                )
        return responses

    async def _wait_ready(self) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), self._timeout)
        except TimeoutError:
            raise DynsecError(
                f"not connected to MQTT broker {self.address} (waited {self._timeout} s)"
            ) from None
        if self._refused:
            raise ConfigError(
                f"MQTT broker {self.address} does not let {self._username!r} read "
                f"{RESPONSE_TOPIC}: that login lacks the dynamic-security admin role"
            )

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    DynsecError(f"{why}; the request may or may not have been applied")
                )
        self._pending.clear()

    def _on_connect(self, client: gmqtt.Client, flags: int, rc: int, properties: Any) -> None:
        # A clean session every time: (re)subscribe on each connection.
        self._subscribe_mid = client.subscribe(gmqtt.Subscription(RESPONSE_TOPIC, qos=1))

    def _on_subscribe(
        self, client: gmqtt.Client, mid: int, granted: tuple[int, ...], properties: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        self._refused = any(code >= _GRANT_FAILED for code in granted)
        self._ready.set()

    def _on_disconnect(self, client: gmqtt.Client, packet: Any, exc: Any = None) -> None:
        self._ready.clear()
        if self._client is not None:
            log.warning("dynamic-security admin lost %s; reconnecting", self.address)
            self._fail_pending(f"lost the connection to {self.address}")

    def _on_message(
        self, client: gmqtt.Client, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        # Every admin sees every response: keep only those naming our requests.
        try:
            responses = json.loads(payload)["responses"]
            request = str(responses[0]["correlationData"]).partition(":")[0]
        except (ValueError, TypeError, KeyError, IndexError):
            return 0
        future = self._pending.get(request)
        if future is not None and not future.done() and isinstance(responses, list):
            future.set_result(responses)
        return 0


def _check_device_id(device_id: str) -> None:
    """A device id becomes part of ACL topics, so ``+``, ``#`` or ``/`` must never get in."""
    if not is_device_id(device_id):
        raise InvalidInput(
            f"{device_id[:80]!r} is not a device id",
            [FieldError(detail=BAD_DEVICE_ID, parameter="device_id")],
        )


def provisioner_for(settings: Settings) -> DynsecProvisioner:
    """The provisioner the settings name (TELEHUB_MQTT_URL, TELEHUB_MQTT_DYNSEC_*)."""
    if not settings.mqtt_dynsec_username:
        raise ConfigError("set TELEHUB_MQTT_DYNSEC_USERNAME/PASSWORD (a dynamic-security admin)")
    address = BrokerAddress.of(settings)
    secret = settings.mqtt_dynsec_password
    return DynsecProvisioner(
        address.host,
        address.port,
        settings.mqtt_dynsec_username,
        secret.get_secret_value() if secret else "",
        tls=address.tls_context(settings),
        timeout=settings.mqtt_dynsec_timeout_seconds,
    )
