"""Wire models of the command endpoints."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from telehub.api.schemas import DeviceId
from telehub.domain.commands import (
    COMMAND_NAME_PATTERN,
    DEFAULT_TTL_S,
    MAX_BULK_DEVICES,
    MAX_TTL_S,
    MIN_TTL_S,
    Command,
    CommandStatus,
)
from telehub.domain.readings import from_micros

CommandName = Annotated[str, StringConstraints(pattern=COMMAND_NAME_PATTERN)]
TtlSeconds = Annotated[
    int,
    Field(ge=MIN_TTL_S, le=MAX_TTL_S, description="after this the command is expired, never sent"),
]


class CommandIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "set_interval", "params": {"seconds": 30}, "ttl_s": 60}]
        },
    )
    name: CommandName
    params: dict[str, Any] = Field(default_factory=dict)
    ttl_s: TtlSeconds = DEFAULT_TTL_S


class BulkCommandIn(CommandIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"attributes": {"site": "north"}, "name": "reboot", "ttl_s": 120},
                {"devices": ["greenhouse-1", "greenhouse-2"], "name": "reboot"},
            ]
        },
    )
    devices: list[DeviceId] | None = Field(
        None, min_length=1, max_length=MAX_BULK_DEVICES, description="these devices (sorted)…"
    )
    attributes: dict[str, str] | None = Field(
        None, min_length=1, description="…or every device whose attributes have these values"
    )


class CommandOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    device_id: str
    batch_id: str | None
    name: str
    params: dict[str, Any]
    status: CommandStatus = Field(
        description="pending (device online, about to be sent) | queued (device offline: "
        "waits, unsent) → sent (handed to the broker once) → delivered (the device's MQTT "
        "client has it; embedded broker only) → acked | failed; expired when ttl_s runs out"
    )
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None = Field(
        None, description="when the device's MQTT client acknowledged it (embedded broker)"
    )
    completed_at: datetime | None = Field(description="when acked, failed or expired")
    result: Any = Field(None, description="what the device answered")

    @classmethod
    def of(cls, c: Command) -> CommandOut:
        return cls(
            id=c.id,
            device_id=c.device_id,
            batch_id=c.batch_id,
            name=c.name,
            params=c.params,
            status=c.status,
            created_at=from_micros(c.created_us),
            expires_at=from_micros(c.expires_us),
            sent_at=from_micros(c.sent_us) if c.sent_us is not None else None,
            delivered_at=from_micros(c.delivered_us) if c.delivered_us is not None else None,
            completed_at=from_micros(c.done_us) if c.done_us is not None else None,
            result=c.result,
        )


class CommandPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[CommandOut]
    next: str | None = Field(description="pass as `before` for older commands; null at the end")


class BatchOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_id: str
    status: CommandStatus = Field(
        description="while any command is open, the least advanced open status (pending, "
        "queued, sent, delivered); otherwise the worst outcome (expired, failed), acked when "
        "all were acked"
    )
    counts: dict[CommandStatus, int]
    commands: list[CommandOut]

    @classmethod
    def of(cls, batch_id: str, commands: list[Command]) -> BatchOut:
        counts = Counter(c.status for c in commands)
        return cls(
            batch_id=batch_id,
            status=_aggregate(counts),
            counts={s: counts.get(s, 0) for s in CommandStatus},
            commands=[CommandOut.of(c) for c in commands],
        )


def _aggregate(counts: Counter[CommandStatus]) -> CommandStatus:
    for status in (
        CommandStatus.PENDING,
        CommandStatus.QUEUED,
        CommandStatus.SENT,
        CommandStatus.DELIVERED,
        CommandStatus.EXPIRED,
        CommandStatus.FAILED,
    ):
        if counts.get(status):
            return status
    return CommandStatus.ACKED
