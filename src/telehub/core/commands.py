"""Commands to devices: created anywhere, sent by whichever process runs the MQTT bridge.

The commands table is the queue. ``send`` stores a command, pending when its
device is online and queued when it is not (domain/commands.py says what each
status guarantees), and wakes this process's dispatcher; dispatchers in other
processes find it by polling. ``claim_due`` moves the commands of online
devices to sent before they go out, so each command is handed to the broker at
most once, only while its device is reported online, and never once it has
expired; a device coming online (``wake``) gets its queued commands at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from telehub.core.events import EventLog, command_event
from telehub.core.ports import Store
from telehub.domain.commands import (
    COMMAND_NAME_PATTERN,
    MAX_BULK_DEVICES,
    MAX_PARAMS_BYTES,
    MAX_TTL_S,
    MIN_TTL_S,
    Command,
    CommandStatus,
    new_batch_id,
    new_command_id,
)
from telehub.domain.readings import now_us
from telehub.domain.telemetry import all_finite
from telehub.errors import CommandClosed, FieldError, InvalidInput, NotFound, UnknownCommand

# Brokers count message expiry in whole seconds: a command goes out only with
# at least this much of its time left, so the broker drops it before it is due.
SEND_MARGIN_US = 2_000_000
_NAME_RE = re.compile(COMMAND_NAME_PATTERN)
_PAGE = 1000


class CommandService:
    def __init__(self, *, store: Store, events: EventLog) -> None:
        self._store = store
        self._events = events
        self._due = asyncio.Event()

    async def send(
        self, device_id: str, *, name: str, params: dict[str, Any], ttl_s: int
    ) -> Command:
        """Queue a command for one device; it goes out once a bridge can send it and the
        device is online."""
        _validate(name, params, ttl_s)
        device = await self._store.devices.get(device_id)
        if device is None:
            raise NotFound(f"device {device_id!r} does not exist")
        online = {device_id} if device.online else set()
        [command] = await self._queue([device_id], name, params, ttl_s, None, online)
        return command

    async def send_bulk(
        self,
        *,
        device_ids: list[str] | None,
        attributes: Mapping[str, str] | None,
        name: str,
        params: dict[str, Any],
        ttl_s: int,
    ) -> tuple[str, list[Command]]:
        """One command per device, named or matched by attributes, under one batch id."""
        _validate(name, params, ttl_s)
        if (device_ids is None) == (attributes is None):
            raise InvalidInput(
                "give either devices or attributes",
                [FieldError(detail="exactly one of devices, attributes", pointer="#")],
            )
        if device_ids is not None and not device_ids:
            raise InvalidInput(
                "devices is empty", [FieldError(detail="name at least one", pointer="#/devices")]
            )
        if attributes is not None and not attributes:
            # An empty filter would match every device: too easy a way to reboot a fleet.
            raise InvalidInput(
                "attributes is empty",
                [FieldError(detail="name at least one attribute", pointer="#/attributes")],
            )
        targets = sorted(
            await self._existing(device_ids)
            if device_ids is not None
            else await self._matching(attributes or {})
        )
        if not targets:
            raise InvalidInput(
                "no device matches",
                [FieldError(detail="matches no device", pointer="#/attributes")],
            )
        batch_id = new_batch_id()
        online = await self._store.commands.online(targets)
        return batch_id, await self._queue(targets, name, params, ttl_s, batch_id, online)

    async def get(self, device_id: str, command_id: str) -> Command:
        await self.expire_due()
        command = await self._store.commands.get(device_id, command_id)
        if command is None:
            raise NotFound(f"device {device_id!r} has no command {command_id!r}")
        return command

    async def page(self, device_id: str, *, limit: int, before: str | None) -> list[Command]:
        """Newest first; ``before`` is the id of the last command of the previous page."""
        if await self._store.devices.get(device_id) is None:
            raise NotFound(f"device {device_id!r} does not exist")
        await self.expire_due()
        cursor = None
        if before is not None:
            cursor = await self._store.commands.get(device_id, before)
            if cursor is None:
                raise InvalidInput(
                    f"no command {before!r} of this device to page from",
                    [FieldError(detail="unknown command id", parameter="before")],
                )
        return await self._store.commands.page(device_id, limit=limit, before=cursor)

    async def batch(self, batch_id: str) -> list[Command]:
        await self.expire_due()
        found = await self._store.commands.batch(batch_id)
        if not found:
            raise NotFound(f"no command batch {batch_id!r}")
        return found

    async def acknowledge(
        self, device_id: str, command_id: str, *, ok: bool, result: Any
    ) -> Command:
        """The device's answer. A repeated answer with the same status (an MQTT redelivery)
        is accepted and changes nothing: the first result stays."""
        status = CommandStatus.ACKED if ok else CommandStatus.FAILED
        done = await self._store.commands.finish(
            device_id, command_id, status=status, result=result, now_us=now_us()
        )
        if done is not None:
            await self._events.record([command_event(done)])
            return done
        await self.expire_due()
        current = await self._store.commands.get(device_id, command_id)
        if current is None:
            raise UnknownCommand(
                f"device {device_id!r} has no command {command_id!r}",
                [FieldError(detail="no such command", parameter="topic")],
            )
        if current.status is status:
            return current
        raise CommandClosed(
            f"command {command_id!r} is already {current.status.value}",
            [FieldError(detail=f"command is {current.status.value}", parameter="topic")],
        )

    async def claim_due(self, *, limit: int = 500) -> list[Command]:
        """Pending and queued commands of online devices, now marked sent: the caller must
        hand them to the broker. Pending ones of devices gone offline become queued.

        One with less than SEND_MARGIN_US left is not sent at all; it will expire.
        """
        now = now_us()
        parked = await self._store.commands.park(now_us=now)
        claimed = await self._store.commands.claim_due(
            now_us=now, expiring_after_us=now + SEND_MARGIN_US, limit=limit
        )
        await self._events.record(
            [command_event(c, at_us=now) for c in parked] + [command_event(c) for c in claimed]
        )
        return claimed

    async def delivered(self, device_id: str, command_id: str) -> Command | None:
        """The device's MQTT client acknowledged the command (its PUBACK): sent → delivered.

        None when it was not sent, or was answered or expired meanwhile (an answer can
        overtake the PUBACK): a delivery changes nothing but a sent command.
        """
        done = await self._store.commands.deliver(device_id, command_id, now_us=now_us())
        if done is not None:
            await self._events.record([command_event(done)])
        return done

    def wake(self) -> None:
        """A device came online: look for commands to send now, not at the next poll."""
        self._due.set()

    async def expire_due(self) -> list[Command]:
        expired = await self._store.commands.expire(now_us=now_us())
        await self._events.record([command_event(c) for c in expired])
        return expired

    async def wait_due(self, poll_seconds: float) -> None:
        """Until this process queues a command, or ``poll_seconds`` pass (for others')."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._due.wait(), poll_seconds)
        self._due.clear()

    async def _queue(
        self,
        device_ids: list[str],
        name: str,
        params: dict[str, Any],
        ttl_s: int,
        batch_id: str | None,
        online: set[str],
    ) -> list[Command]:
        """Store one command per device: pending if the device is online, else queued."""
        created = now_us()
        commands = [
            Command(
                id=new_command_id(),
                device_id=device_id,
                batch_id=batch_id,
                name=name,
                params=params,
                status=CommandStatus.PENDING if device_id in online else CommandStatus.QUEUED,
                created_us=created,
                expires_us=created + ttl_s * 1_000_000,
            )
            for device_id in device_ids
        ]
        await self._store.commands.add(commands)
        self._due.set()
        await self._events.record([command_event(c) for c in commands])
        return commands

    async def _existing(self, device_ids: list[str]) -> list[str]:
        unique = list(dict.fromkeys(device_ids))
        if len(unique) > MAX_BULK_DEVICES:
            raise InvalidInput(
                f"at most {MAX_BULK_DEVICES} devices per bulk command",
                [FieldError(detail="too many devices", pointer="#/devices")],
            )
        found = await self._store.devices.existing(unique)
        missing = [d for d in unique if d not in found]
        if missing:
            raise InvalidInput(
                f"{len(missing)} device(s) do not exist: {', '.join(missing[:10])}",
                [FieldError(detail=f"no device {d!r}", pointer="#/devices") for d in missing[:10]],
            )
        return unique

    async def _matching(self, attributes: Mapping[str, str]) -> list[str]:
        found: list[str] = []
        after: str | None = None
        while True:
            page = await self._store.devices.page(limit=_PAGE, after=after, attributes=attributes)
            found.extend(d.id for d in page)
            if len(found) > MAX_BULK_DEVICES:
                raise InvalidInput(
                    f"the filter matches more than {MAX_BULK_DEVICES} devices",
                    [FieldError(detail="matches too many devices", pointer="#/attributes")],
                )
            if len(page) < _PAGE:
                return found
            after = page[-1].id


def _validate(name: str, params: dict[str, Any], ttl_s: int) -> None:
    errors: list[FieldError] = []
    if not _NAME_RE.fullmatch(name):
        errors.append(FieldError(detail="must match [A-Za-z0-9_.-]{1,64}", pointer="#/name"))
    if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
        errors.append(
            FieldError(detail=f"between {MIN_TTL_S} and {MAX_TTL_S} seconds", pointer="#/ttl_s")
        )
    try:
        size = len(orjson.dumps(params))
    except (TypeError, orjson.JSONEncodeError):
        errors.append(FieldError(detail="must be a JSON object", pointer="#/params"))
    else:
        if not all_finite(params):
            # JSON has no NaN (orjson would write null): refuse rather than change it.
            errors.append(FieldError(detail="numbers must be finite", pointer="#/params"))
        if size > MAX_PARAMS_BYTES:
            errors.append(
                FieldError(detail=f"at most {MAX_PARAMS_BYTES} bytes", pointer="#/params")
            )
    if errors:
        raise InvalidInput("the command is invalid", errors)
