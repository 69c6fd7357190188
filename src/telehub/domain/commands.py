"""Device commands: what one is, and the states it moves through."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

COMMAND_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class CommandStatus(StrEnum):
    """pending → sent → acked | failed; pending or sent → expired when its time runs out."""

    PENDING = "pending"
    SENT = "sent"
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def open(self) -> bool:
        return self in (CommandStatus.PENDING, CommandStatus.SENT)


def new_command_id() -> str:
    """Random, and safe inside an MQTT topic level (no ``+``, ``#`` or ``/``)."""
    return "cmd-" + secrets.token_hex(8)


def new_batch_id() -> str:
    return "bat-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    device_id: str
    name: str
    params: dict[str, Any]
    status: CommandStatus
    created_us: int
    expires_us: int
    batch_id: str | None = None
    sent_us: int | None = None
    done_us: int | None = None
    result: Any = None


class CommandAck(BaseModel):
    """A device's answer to a command: ``{"status": "ok"|"error", "result": …}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "error"]
    result: Any = Field(None, description="anything the device reports back (JSON)")
