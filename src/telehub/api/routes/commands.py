"""Commands to devices: queue one or many, then follow their status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from telehub.api.command_schemas import BatchOut, BulkCommandIn, CommandIn, CommandOut, CommandPage
from telehub.api.deps import CommandsDep, ReadScope, WriteScope
from telehub.api.routes.devices import DevicePath

router = APIRouter(tags=["commands"])
CommandPath = Annotated[str, Path(max_length=32, description="command id")]


@router.post(
    "/api/v1/devices/{device_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
)
async def send_command(
    device_id: DevicePath, body: CommandIn, commands: CommandsDep, _: WriteScope
) -> CommandOut:
    """Queue a command; it is published to the device (MQTT, QoS 1) at most once, and only
    while the device is online.

    Follow it with `GET …/commands/{command_id}`: pending (device online) or queued
    (device offline: it waits) → sent → delivered (embedded broker) → acked | failed,
    or expired when `ttl_s` runs out first (an expired command is never sent).
    """
    command = await commands.send(device_id, name=body.name, params=body.params, ttl_s=body.ttl_s)
    return CommandOut.of(command)


@router.get("/api/v1/devices/{device_id}/commands", response_model=CommandPage)
async def list_commands(
    device_id: DevicePath,
    commands: CommandsDep,
    _: ReadScope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None, Query(max_length=32, description="cursor: the last id seen")
    ] = None,
) -> CommandPage:
    """The device's commands, newest first."""
    found = await commands.page(device_id, limit=limit, before=before)
    return CommandPage(
        items=[CommandOut.of(c) for c in found],
        next=found[-1].id if len(found) == limit else None,
    )


@router.get("/api/v1/devices/{device_id}/commands/{command_id}", response_model=CommandOut)
async def get_command(
    device_id: DevicePath, command_id: CommandPath, commands: CommandsDep, _: ReadScope
) -> CommandOut:
    return CommandOut.of(await commands.get(device_id, command_id))


@router.post("/api/v1/commands", status_code=status.HTTP_202_ACCEPTED, response_model=BatchOut)
async def send_bulk_command(body: BulkCommandIn, commands: CommandsDep, _: WriteScope) -> BatchOut:
    """One command per device — listed in `devices`, or matched by `attributes` — under
    one batch id, with an aggregate status."""
    batch_id, sent = await commands.send_bulk(
        device_ids=body.devices,
        attributes=body.attributes,
        name=body.name,
        params=body.params,
        ttl_s=body.ttl_s,
    )
    return BatchOut.of(batch_id, sent)


@router.get("/api/v1/commands/{batch_id}", response_model=BatchOut)
async def get_batch(
    batch_id: Annotated[str, Path(max_length=32)], commands: CommandsDep, _: ReadScope
) -> BatchOut:
    return BatchOut.of(batch_id, await commands.batch(batch_id))
