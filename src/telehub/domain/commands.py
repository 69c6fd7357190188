"""Device commands: what one is, and the states it moves through."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

COMMAND_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# What a command may ask, here rather than in the core so that the SDKs and the
# CLI can check it without importing the core's services.
DEFAULT_TTL_S = 300
MIN_TTL_S = 5
MAX_TTL_S = 7 * 86_400
MAX_PARAMS_BYTES = 64 * 1024
MAX_BULK_DEVICES = 10_000


class CommandStatus(StrEnum):
    """Where a command is: each status says what the hub knows, no more.

    pending | queued → sent → delivered → acked | failed, where delivered may be
    skipped (only the embedded broker sees the device's PUBACK) and so may the
    device's answer; any open status → expired when the command's time runs out.
    A pending command whose device is offline by the time a bridge looks at it
    becomes queued; a queued one is sent when its device comes online.
    """

    PENDING = "pending"  # its device was online when it was made; a bridge sends it next
    QUEUED = "queued"  # its device is offline or never connected: it waits, unsent
    SENT = "sent"  # handed to the broker once, for its device while reported online
    DELIVERED = "delivered"  # the device's MQTT client acknowledged it (PUBACK)
    ACKED = "acked"  # the device answered ok
    FAILED = "failed"  # the device answered error
    EXPIRED = "expired"  # its time ran out first; never sent after that

    @property
    def open(self) -> bool:
        return self in _OPEN

    @property
    def rank(self) -> int:
        """How far along: a status never moves to a lower rank."""
        return _RANK.get(self, 4)


_OPEN = frozenset(
    (CommandStatus.PENDING, CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.DELIVERED)
)
_RANK = {
    CommandStatus.PENDING: 0,
    CommandStatus.QUEUED: 1,
    CommandStatus.SENT: 2,
    CommandStatus.DELIVERED: 3,
}


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
    delivered_us: int | None = None
    done_us: int | None = None
    result: Any = None


class CommandAck(BaseModel):
    """A device's answer to a command: ``{"status": "ok"|"error", "result": …}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "error"]
    result: Any = Field(None, description="anything the device reports back (JSON)")
