"""Device registry: create, list, change, delete, rotate credentials."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from telehub.core.auth import Authenticator
from telehub.core.events import EventLog, presence_event
from telehub.core.ports import CredentialMirror, Store
from telehub.domain.devices import (
    DEVICE_TOKEN_PREFIX,
    MAX_ATTRIBUTE_KEY_CHARS,
    Device,
    attribute_errors,
    fingerprint,
    hash_secret,
    new_secret,
)
from telehub.domain.live import CredentialKind, Revoked
from telehub.domain.readings import now_us
from telehub.errors import BrokerUnavailable, FieldError, InvalidInput, NotFound, TelehubError


class DeviceService:
    """``mirror`` (an MQTT broker's auth) gets every device's login too.

    The order of each change keeps the two in step when one side fails: a
    device is created here first and removed again if the broker refuses; a
    token is rotated and a device deleted on the broker first, so a failure
    there changes nothing here. Either way the caller gets BrokerUnavailable.
    """

    def __init__(
        self,
        *,
        store: Store,
        auth: Authenticator,
        events: EventLog,
        mirror: CredentialMirror | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._auth = auth
        self._mirror = mirror

    async def create(
        self, *, device_id: str | None, name: str | None, attributes: dict[str, Any]
    ) -> tuple[Device, str]:
        """Register a device; its token is returned once and only its hash is kept."""
        _check_attributes(attributes)
        device_id = device_id or f"dev-{secrets.token_hex(4)}"
        secret = new_secret(DEVICE_TOKEN_PREFIX)
        device = Device(
            id=device_id, name=name or device_id, attributes=attributes, created_us=now_us()
        )
        await self._store.devices.create(device, token_hash=hash_secret(secret))
        if self._mirror is not None:
            try:
                await self._mirror.device_created(device_id, secret)
            except TelehubError as exc:
                await self._store.devices.delete(device_id)
                raise _broker_failed(exc) from None
        return device, secret

    async def get(self, device_id: str) -> Device:
        device = await self._store.devices.get(device_id)
        if device is None:
            raise NotFound(f"device {device_id!r} does not exist")
        return device

    async def page(
        self, *, limit: int, after: str | None, attributes: Mapping[str, str]
    ) -> list[Device]:
        """Devices ordered by id after the cursor; ``attributes`` match their JSON text form."""
        for key in attributes:
            # A JSON path cannot address such keys on SQLite; refuse rather than miss.
            if not key or '"' in key or "\\" in key or len(key) > MAX_ATTRIBUTE_KEY_CHARS:
                raise InvalidInput(
                    f"attribute filter key {key!r} cannot be used",
                    [
                        FieldError(
                            detail=f"1 to {MAX_ATTRIBUTE_KEY_CHARS} characters, "
                            "no quotes or backslashes",
                            parameter="attribute",
                        )
                    ],
                )
        return await self._store.devices.page(limit=limit, after=after, attributes=attributes)

    async def update(
        self, device_id: str, *, name: str | None, attributes: dict[str, Any] | None
    ) -> Device:
        if attributes is not None:
            _check_attributes(attributes)
        device = await self._store.devices.update(device_id, name=name, attributes=attributes)
        if device is None:
            raise NotFound(f"device {device_id!r} does not exist")
        return device

    async def delete(self, device_id: str) -> None:
        """Remove the device with all its readings, state and commands; its live sessions end."""
        if self._mirror is not None:
            await self.get(device_id)
            try:
                await self._mirror.device_deleted(device_id)
            except TelehubError as exc:
                raise _broker_failed(exc) from None
        if not await self._store.devices.delete(device_id):
            raise NotFound(f"device {device_id!r} does not exist")
        self._auth.revoke(Revoked(CredentialKind.DEVICE, device_id))

    async def delete_state(self, device_id: str, key: str) -> None:
        """Remove one state key of the device (one stored by mistake, say, under the name
        of a metric); NotFound if the device or the key does not exist."""
        await self.get(device_id)
        if not await self._store.readings.delete_state(device_id, key):
            raise NotFound(f"device {device_id!r} has no state key {key!r}")

    async def report_presence(self, device_id: str, *, online: bool, live: bool) -> bool:
        """A device said it is online or offline; True if that changed its presence.

        ``live`` is False for a status the broker replays from its retained copy:
        it restores presence but is no contact from the device, so ``last_seen``
        stays. Only "online" is contact; "offline" usually comes from the broker
        (the device's last will), after the device has gone quiet.
        """
        changed = await self._store.devices.set_presence(
            device_id, online=online, at_us=now_us(), contact=live and online
        )
        if changed is None:
            raise NotFound(f"device {device_id!r} does not exist")
        if changed:
            await self._events.record([presence_event(device_id, online=online)])
        return changed

    async def rotate_token(self, device_id: str) -> str:
        """Issue a new token; the old one stops working at once, and its live sessions end."""
        secret = new_secret(DEVICE_TOKEN_PREFIX)
        if self._mirror is not None:
            await self.get(device_id)
            try:
                await self._mirror.device_token_rotated(device_id, secret)
            except TelehubError as exc:
                raise _broker_failed(exc) from None
        token_hash = hash_secret(secret)
        if not await self._store.devices.set_token_hash(device_id, token_hash):
            raise NotFound(f"device {device_id!r} does not exist")
        self._auth.revoke(Revoked(CredentialKind.DEVICE, device_id, keep=fingerprint(token_hash)))
        return secret


def _check_attributes(attributes: dict[str, Any]) -> None:
    errors = attribute_errors(attributes)
    if errors:
        raise InvalidInput("the device's attributes are invalid", errors)


def _broker_failed(exc: TelehubError) -> BrokerUnavailable:
    return BrokerUnavailable(f"the MQTT broker did not take the device's login: {exc}")
