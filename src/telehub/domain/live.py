"""What travels on the bus: committed readings and device state, numbered events of
the durable log, and revoked credentials.

All are plain frozen values, so the in-memory bus hands the very objects the
writer committed to every subscriber, and the Redis bus encodes them once.
Each carries a ``wire`` scratch dict where an adapter keeps the encoding it
made, so a message fanned out to a thousand clients is encoded once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from telehub.domain.devices import Principal, fingerprint
from telehub.domain.readings import Telemetry

_SEQ = itertools.count(1)


class EventType(StrEnum):
    """The feeds of the event log (SSE ``event:`` names)."""

    PRESENCE = "presence"
    COMMANDS = "commands"
    ALERTS = "alerts"
    JOBS = "jobs"


@dataclass(frozen=True, slots=True)
class LiveReadings:
    """The readings and state of one commit, as submitted (one Telemetry per submission).

    Only submissions that stored a new reading are included with their readings:
    a resent batch is not shown twice. A submission's state updates are included
    whatever its readings (state is latest-wins, each update with its timestamp).
    ``seq`` numbers the messages of this process, so a run of
    them can be named (a frame cache key) without hashing their readings.
    """

    items: tuple[Telemetry, ...]
    committed_us: int
    weight: int = field(default=0, compare=False)
    wire: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    seq: int = field(default_factory=lambda: next(_SEQ), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.weight:
            object.__setattr__(self, "weight", max(1, sum(len(t.readings) for t in self.items)))


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before the log has numbered it."""

    type: EventType
    device_id: str | None
    at_us: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the durable event log; ``id`` increases in commit order."""

    id: int
    type: EventType
    device_id: str | None
    at_us: int
    data: dict[str, Any]
    wire: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LoggedEvents:
    """Events just committed to the log, in id order: the bus message that announces them."""

    events: tuple[Event, ...]

    @property
    def weight(self) -> int:
        return len(self.events)


class CredentialKind(StrEnum):
    TOKEN = "token"  # an API token, by its id
    DEVICE = "device"  # a device's token, by the device's id


@dataclass(frozen=True, slots=True)
class Revoked:
    """A credential stopped working (committed): every live session that uses it ends.

    ``kind`` token: the API token ``id`` was deleted (its live tickets with it).
    ``kind`` device: the device ``id`` was deleted (``keep`` None), or its token
    was rotated: ``keep`` is the new token's fingerprint, and a session of any
    other token of that device ends. The new token is named rather than the
    old, as the old one is no longer known once it is replaced.
    """

    kind: CredentialKind
    id: str
    keep: str | None = None

    @property
    def weight(self) -> int:
        return 1

    def ends(self, principal: Principal) -> bool:
        """Whether a session of ``principal`` must end."""
        if self.kind is CredentialKind.TOKEN:
            return principal.token_id == self.id
        if principal.device_id != self.id:
            return False
        return (
            self.keep is None
            or principal.credential is None
            or fingerprint(principal.credential) != self.keep
        )


BusMessage = LiveReadings | LoggedEvents | Revoked


@dataclass(frozen=True, slots=True)
class Filter:
    """What one live subscription wants: None means every device, or every metric."""

    devices: frozenset[str] | None
    metrics: frozenset[str] | None

    def wants_device(self, device_id: str | None) -> bool:
        return self.devices is None or device_id in self.devices
