"""CommandService: send a command, and follow its status changes as they are logged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from telehub.bus import Channel, Delivery
from telehub.bus.subscription import SubscriptionClosed
from telehub.core.auth import Authenticator
from telehub.core.commands import CommandService
from telehub.core.devices import DeviceService
from telehub.domain.commands import DEFAULT_TTL_S, Command, CommandStatus
from telehub.domain.devices import Principal, Scope
from telehub.domain.live import Event, EventType, LoggedEvents
from telehub.domain.readings import now_us
from telehub.grpc import convert
from telehub.grpc.auth import Context, caller
from telehub.grpc.streams import LiveStreams
from telehub.v1 import commands_pb2, commands_pb2_grpc


class CommandServicer(commands_pb2_grpc.CommandServiceServicer):
    def __init__(
        self,
        *,
        auth: Authenticator,
        commands: CommandService,
        devices: DeviceService,
        streams: LiveStreams,
    ) -> None:
        self._auth = auth
        self._commands = commands
        self._devices = devices
        self._streams = streams

    async def Send(
        self, request: commands_pb2.SendCommandRequest, context: Context
    ) -> commands_pb2.Command:
        await caller(self._auth, context, Scope.WRITE)
        command = await self._commands.send(
            request.device_id,
            name=request.name,
            params=convert.plain(request.params),
            ttl_s=request.ttl_s or DEFAULT_TTL_S,
        )
        return convert.command(command)

    async def Watch(
        self, request: commands_pb2.WatchCommandsRequest, context: Context
    ) -> AsyncIterator[commands_pb2.Command]:
        principal = await caller(self._auth, context, Scope.READ)
        if request.command_id:
            changes = self._one(principal, request.device_id, request.command_id)
        else:
            changes = self._device(principal, request.device_id)
        async for command in changes:
            yield convert.command(command)

    async def _one(
        self, principal: Principal, device_id: str, command_id: str
    ) -> AsyncIterator[Command]:
        """Its current status, then each logged change, ending after the final one."""
        commands = self._commands
        # Subscribed before reading the current status: no change falls between.
        async with self._streams.subscribe([Channel.EVENTS], principal) as subscription:
            current = await commands.get(device_id, command_id)
            yield current
            while current.status.open:
                try:
                    async with asyncio.timeout(_until_expiry(current)):
                        delivery = await subscription.next()
                except TimeoutError:
                    delivery = None  # past its deadline: reading it moves it to expired
                except SubscriptionClosed:
                    self._streams.check()
                    raise
                events = [] if delivery is None else _command_events(delivery, device_id)
                changes = [e for e in events if e.data["command_id"] == command_id]
                if delivery is None or delivery.lost:
                    latest = await commands.get(device_id, command_id)
                    if latest.status != current.status:
                        changes = []
                        current = latest
                        yield latest
                for event in changes:
                    if CommandStatus(event.data["status"]).rank <= current.status.rank:
                        continue  # committed before the first read, which already showed it
                    current = _applied(current, event)
                    yield current

    async def _device(self, principal: Principal, device_id: str) -> AsyncIterator[Command]:
        """Every status change of the device's commands, until the caller cancels."""
        async with self._streams.subscribe([Channel.EVENTS], principal) as subscription:
            await self._devices.get(device_id)
            async for delivery in subscription:
                for event in _command_events(delivery, device_id):
                    command = await self._commands.get(device_id, event.data["command_id"])
                    yield _applied(command, event)
        self._streams.check()


def _command_events(delivery: Delivery, device_id: str) -> list[Event]:
    return [
        event
        for message in delivery.messages
        if isinstance(message, LoggedEvents)
        for event in message.events
        if event.type is EventType.COMMANDS and event.device_id == device_id
    ]


def _applied(command: Command, event: Event) -> Command:
    """The command as this logged change left it (a later read may show a later status)."""
    status = CommandStatus(event.data["status"])
    return replace(
        command,
        status=status,
        result=event.data.get("result"),
        sent_us=event.at_us if status is CommandStatus.SENT else command.sent_us,
        delivered_us=event.at_us if status is CommandStatus.DELIVERED else command.delivered_us,
        done_us=event.at_us if not status.open else None,
    )


def _until_expiry(command: Command) -> float:
    return max(0.0, (command.expires_us - now_us()) / 1_000_000) + 0.5
