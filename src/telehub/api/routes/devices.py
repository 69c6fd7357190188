"""Device registry endpoints (admin for changes, read for lookups, write to remove a
state key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from telehub.api.deps import AdminScope, DevicesDep, ReadScope, WriteScope
from telehub.api.schemas import (
    DEVICE_ID_DESCRIPTION,
    DeviceCreate,
    DeviceCreated,
    DeviceOut,
    DevicePage,
    DevicePatch,
    DeviceToken,
)
from telehub.domain.rules import DEVICE_ID_MAX_CHARS, DEVICE_ID_PATTERN, METRIC_NAME_PATTERN
from telehub.errors import FieldError, InvalidInput

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
DevicePath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description=DEVICE_ID_DESCRIPTION)]
StateKeyPath = Annotated[str, Path(pattern=METRIC_NAME_PATTERN, description="a state key")]


def _attribute_filters(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise InvalidInput(
                f"attribute filter {pair!r} is not key:value",
                [FieldError(detail="expected key:value", parameter="attribute")],
            )
        out[key] = value
    return out


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeviceCreated)
async def create_device(body: DeviceCreate, devices: DevicesDep, _: AdminScope) -> DeviceCreated:
    """Register a device. The response holds its token, shown only this once."""
    device, token = await devices.create(
        device_id=body.id, name=body.name, attributes=body.attributes
    )
    return DeviceCreated(**DeviceOut.of(device).model_dump(), token=token)


@router.get("", response_model=DevicePage)
async def list_devices(
    devices: DevicesDep,
    _: ReadScope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None, Query(max_length=DEVICE_ID_MAX_CHARS, description="cursor: last id seen")
    ] = None,
    attribute: Annotated[
        list[str], Query(description="filter `key:value` on attributes; repeat to AND")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
) -> DevicePage:
    found = await devices.page(limit=limit, after=after, attributes=_attribute_filters(attribute))
    items = [DeviceOut.of(d) for d in found]
    return DevicePage(items=items, next=items[-1].id if len(items) == limit else None)


@router.get("/{device_id}", response_model=DeviceOut)
async def get_device(device_id: DevicePath, devices: DevicesDep, _: ReadScope) -> DeviceOut:
    return DeviceOut.of(await devices.get(device_id))


@router.patch("/{device_id}", response_model=DeviceOut)
async def patch_device(
    device_id: DevicePath, body: DevicePatch, devices: DevicesDep, _: AdminScope
) -> DeviceOut:
    device = await devices.update(device_id, name=body.name, attributes=body.attributes)
    return DeviceOut.of(device)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(device_id: DevicePath, devices: DevicesDep, _: AdminScope) -> Response:
    """Delete the device, its readings and its state."""
    await devices.delete(device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{device_id}/state/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_state_key(
    device_id: DevicePath, key: StateKeyPath, devices: DevicesDep, _: WriteScope
) -> Response:
    """Remove one state key of the device (the latest values keep its metrics)."""
    await devices.delete_state(device_id, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{device_id}/token", response_model=DeviceToken)
async def rotate_device_token(
    device_id: DevicePath, devices: DevicesDep, _: AdminScope
) -> DeviceToken:
    """Issue a new device token; the old one stops working immediately."""
    return DeviceToken(device_id=device_id, token=await devices.rotate_token(device_id))
