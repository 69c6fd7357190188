"""What the core needs from storage, as small Protocols (storage implements them)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from telehub.domain.commands import Command, CommandStatus
from telehub.domain.devices import ApiToken, Device, RejectedInput, Scope
from telehub.domain.live import BusMessage, Event, EventDraft, EventType
from telehub.domain.readings import Telemetry


class Aggregate(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Point:
    ts_us: int
    value: float


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """One series, ``start_us <= ts < end_us``, at most ``limit`` points, oldest first
    unless ``desc``."""

    device_id: str
    metric: str
    start_us: int
    end_us: int
    limit: int
    desc: bool = False


@dataclass(frozen=True, slots=True)
class LatestValues:
    readings: dict[str, Point]
    state: dict[str, tuple[int, Any]]


class DeviceStore(Protocol):
    async def create(self, device: Device, *, token_hash: str) -> Device: ...
    async def get(self, device_id: str) -> Device | None: ...
    async def existing(self, device_ids: Sequence[str]) -> set[str]: ...
    async def by_token_hash(self, token_hash: str) -> Device | None: ...
    async def page(
        self, *, limit: int, after: str | None, attributes: Mapping[str, str]
    ) -> list[Device]: ...
    async def update(
        self, device_id: str, *, name: str | None, attributes: dict[str, Any] | None
    ) -> Device | None: ...
    async def delete(self, device_id: str) -> bool: ...
    async def set_token_hash(self, device_id: str, token_hash: str) -> bool: ...
    async def set_presence(
        self, device_id: str, *, online: bool, at_us: int, contact: bool
    ) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class Committed:
    """What one batch's commit did: per item, how many readings were new (None: its
    device was deleted meanwhile, nothing of it is stored), and the way the store
    committed it (``sqlite-inline``, ``postgres-copy``, …), counted in metrics."""

    new: list[int | None]
    path: str


class ReadingStore(Protocol):
    async def write(self, items: Sequence[Telemetry], *, received_us: int) -> Committed:
        """Commit all items in one transaction."""
        ...

    async def metrics(self, device_id: str) -> list[str]: ...
    async def metrics_among(self, device_id: str, names: Collection[str]) -> set[str]:
        """Which of ``names`` the device has readings of (one index lookup each)."""
        ...

    async def delete_state(self, device_id: str, key: str) -> bool:
        """Remove one state key of the device; False if it had none of that name."""
        ...

    async def points(self, series: SeriesRange) -> list[Point]: ...
    async def buckets(
        self, series: SeriesRange, *, width_us: int, agg: Aggregate
    ) -> list[Point]: ...
    async def latest(self, device_id: str) -> LatestValues: ...


@dataclass(frozen=True, slots=True)
class RollupStep:
    """One build transaction on one series: buckets written, and whether it is caught up."""

    buckets: int
    finished: bool


class KnownMetrics(Protocol):
    """What the ingest gate asks storage: which of these keys are metrics of the device."""

    async def metrics_among(self, device_id: str, names: Collection[str]) -> set[str]: ...


class RollupStore(Protocol):
    """The rollup build pass's storage: series, their progress rows, one bounded step."""

    async def series(self) -> list[tuple[str, str]]: ...
    async def prepare(self) -> int:
        """Create missing progress rows; return for how many series."""
        ...

    async def step(self, device_id: str, metric: str, *, until_us: int) -> RollupStep:
        """Advance the series' rollups toward ``until_us`` in one bounded transaction."""
        ...

    def on_late(self, listener: Callable[[int], None]) -> None:
        """Have ``listener(n)`` called when a commit merged ``n`` late readings into rollups."""
        ...


class TokenStore(Protocol):
    async def create(self, token: ApiToken, *, token_hash: str) -> None: ...
    async def all(self) -> list[ApiToken]: ...
    async def delete(self, token_id: str) -> bool: ...
    async def by_hash(self, token_hash: str) -> ApiToken | None: ...
    async def has_admin(self) -> bool: ...
    async def rename(self, token_id: str, name: str) -> bool: ...


class TicketStore(Protocol):
    """Live tickets (telehub.core.tickets), by hash; each can be taken once."""

    async def add(
        self, *, ticket_hash: str, token_id: str, scope: Scope, expires_us: int, now_us: int
    ) -> None:
        """Keep a ticket until ``expires_us``; forget tickets expired by ``now_us``."""
        ...

    async def take(self, ticket_hash: str, *, now_us: int) -> tuple[str, Scope] | None:
        """Remove the ticket; its token id and scope if it was unexpired and its token
        still exists, else None. Of concurrent takes, across processes, one gets it."""
        ...


class RejectedStore(Protocol):
    async def add(
        self,
        *,
        received_us: int,
        transport: str,
        device_id: str | None,
        reason: str,
        detail: str,
        excerpt: str,
        keep: int,
    ) -> None: ...
    async def recent(
        self, *, limit: int, before_id: int | None, device_id: str | None
    ) -> list[RejectedInput]: ...


class CommandStore(Protocol):
    async def add(self, new: Sequence[Command]) -> None: ...
    async def get(self, device_id: str, command_id: str) -> Command | None: ...
    async def page(
        self, device_id: str, *, limit: int, before: Command | None
    ) -> list[Command]: ...
    async def batch(self, batch_id: str) -> list[Command]: ...
    async def online(self, device_ids: Sequence[str]) -> set[str]:
        """Which of these devices are reported online: only they are sent commands."""
        ...

    async def park(self, *, now_us: int) -> list[Command]:
        """Pending → queued for every device not online."""
        ...

    async def claim_due(
        self, *, now_us: int, expiring_after_us: int, limit: int
    ) -> list[Command]: ...
    async def deliver(self, device_id: str, command_id: str, *, now_us: int) -> Command | None: ...
    async def finish(
        self,
        device_id: str,
        command_id: str,
        *,
        status: CommandStatus,
        result: Any,
        now_us: int,
    ) -> Command | None: ...
    async def expire(self, *, now_us: int) -> list[Command]: ...


class EventStore(Protocol):
    async def append(self, drafts: Sequence[EventDraft], *, keep: int) -> list[Event]:
        """Number and commit the events; ids grow in commit order across processes."""
        ...

    async def after(
        self,
        after_id: int,
        *,
        types: Collection[EventType] | None = None,
        device_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[Event]: ...
    async def bounds(self) -> tuple[int, int] | None: ...


class LivePublisher(Protocol):
    """The bus, as the core sees it: publishing never waits."""

    def publish(self, message: BusMessage) -> None: ...


class CredentialMirror(Protocol):
    """Somewhere else that must know device logins: an MQTT broker's own auth.

    Each call is idempotent; a failure raises a TelehubError.
    """

    async def device_created(self, device_id: str, token: str) -> None: ...
    async def device_token_rotated(self, device_id: str, token: str) -> None: ...
    async def device_deleted(self, device_id: str) -> None: ...


class Store(Protocol):
    """Everything the core persists, behind one object chosen by the database URL."""

    @property
    def devices(self) -> DeviceStore: ...
    @property
    def readings(self) -> ReadingStore: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def tickets(self) -> TicketStore: ...
    @property
    def rejected(self) -> RejectedStore: ...
    @property
    def commands(self) -> CommandStore: ...
    @property
    def events(self) -> EventStore: ...
    @property
    def rollups(self) -> RollupStore: ...

    async def ping(self) -> None: ...
    async def schema_pending(self) -> bool: ...
    async def close(self) -> None: ...
