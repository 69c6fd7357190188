"""Wire models of the REST API (requests and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from telehub.domain.devices import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    ApiToken,
    Device,
    RejectedInput,
    Scope,
)
from telehub.domain.readings import from_micros
from telehub.domain.rules import DEVICE_ID_PATTERN, DEVICE_ID_RULE

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
DEVICE_ID_DESCRIPTION = f"device id: {DEVICE_ID_RULE}; case-sensitive"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_ATTRIBUTE_LIMITS = (
    f"at most {MAX_ATTRIBUTES} keys of 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters, each value at "
    f"most {MAX_ATTRIBUTE_VALUE_BYTES} bytes as JSON, {MAX_ATTRIBUTES_BYTES} bytes in all"
)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "greenhouse-1", "name": "Greenhouse 1", "attributes": {"site": "north"}}
            ]
        },
    )
    id: DeviceId | None = Field(
        None, description=f"{DEVICE_ID_DESCRIPTION}; generated when omitted"
    )
    name: Name | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, description=_ATTRIBUTE_LIMITS)


class DevicePatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Greenhouse North"}]}
    )
    name: Name | None = None
    attributes: dict[str, Any] | None = Field(
        None, description=f"replaces all attributes; {_ATTRIBUTE_LIMITS}"
    )


class DeviceOut(_Out):
    id: str
    name: str
    attributes: dict[str, Any]
    created_at: datetime
    last_seen: datetime | None
    online: bool | None = Field(
        description="presence from the device's MQTT status topic; null until it reports"
    )
    presence_changed_at: datetime | None

    @classmethod
    def of(cls, d: Device) -> DeviceOut:
        return cls(
            id=d.id,
            name=d.name,
            attributes=d.attributes,
            created_at=from_micros(d.created_us),
            last_seen=from_micros(d.last_seen_us) if d.last_seen_us is not None else None,
            online=d.online,
            presence_changed_at=from_micros(d.presence_us) if d.presence_us is not None else None,
        )


class DeviceCreated(DeviceOut):
    token: str = Field(description="the device's bearer token; shown only this once")


class DeviceToken(_Out):
    device_id: str
    token: str = Field(description="the new token; the old one no longer works")


class DevicePage(_Out):
    items: list[DeviceOut]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "grafana", "scope": "read"}]}
    )
    name: Name
    scope: Scope = Scope.READ


class TokenOut(_Out):
    id: str
    name: str
    scope: Scope
    created_at: datetime

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(id=t.id, name=t.name, scope=t.scope, created_at=from_micros(t.created_us))


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer secret; shown only this once")


class IngestAccepted(_Out):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"accepted": 2, "duplicates": 0, "state": 0}]}
    )
    accepted: int = Field(description="readings stored by this request")
    duplicates: int = Field(description="readings already stored (a resend)")
    state: int = Field(description="state fields received")


class PointOut(_Out):
    ts: datetime
    value: float


class SeriesOut(_Out):
    device_id: str
    interval: str | None
    agg: str | None
    series: dict[str, list[PointOut]]
    truncated: list[str] = Field(
        default_factory=list,
        description="metrics with more points than this page holds (`limit` per metric)",
    )
    next: str | None = Field(
        default=None,
        description="cursor to the rest: pass as `cursor` for the next page; null at the end",
    )


class LatestReading(_Out):
    ts: datetime
    value: float


class LatestState(_Out):
    ts: datetime
    value: Any


class LatestOut(_Out):
    device_id: str
    readings: dict[str, LatestReading]
    state: dict[str, LatestState]


class RejectedOut(_Out):
    id: int
    received_at: datetime
    transport: str
    device_id: str | None
    reason: str
    detail: str
    excerpt: str

    @classmethod
    def of(cls, r: RejectedInput) -> RejectedOut:
        return cls(
            id=r.id,
            received_at=from_micros(r.received_us),
            transport=r.transport,
            device_id=r.device_id,
            reason=r.reason,
            detail=r.detail,
            excerpt=r.excerpt,
        )


class RejectedPage(_Out):
    items: list[RejectedOut]
    next: int | None = Field(description="pass as `before` for older entries")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None
