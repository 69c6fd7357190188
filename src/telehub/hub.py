"""The composition root: settings in, a running hub out.

Only this module knows both the core and its storage implementation; every
process (API, CLI, later MQTT and gRPC) opens one ``Hub`` and talks to its
services.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from telehub.bus import Bus, bus_for
from telehub.bus.revocations import follow_revocations
from telehub.config import Settings
from telehub.core.auth import Authenticator, TokenService
from telehub.core.batching import BatchingPolicy
from telehub.core.commands import CommandService
from telehub.core.devices import DeviceService
from telehub.core.events import EventLog
from telehub.core.health import ComponentStates, DatabaseHealth
from telehub.core.ingest import Ingestor
from telehub.core.ingest_gate import IngestGate, IngestLimits
from telehub.core.metrics import Metrics
from telehub.core.ports import CredentialMirror
from telehub.core.rejected import RejectedLog
from telehub.core.rollups import RollupService
from telehub.core.sessions import SessionRegistry
from telehub.core.telemetry import TelemetryService
from telehub.core.tickets import LiveTickets
from telehub.mqtt.dynsec import provisioner_for
from telehub.storage.store import SqlStore


@dataclass(frozen=True, slots=True)
class Hub:
    settings: Settings
    store: SqlStore
    metrics: Metrics
    auth: Authenticator
    sessions: SessionRegistry
    tokens: TokenService
    tickets: LiveTickets
    devices: DeviceService
    ingestor: Ingestor
    ingest: IngestGate
    telemetry: TelemetryService
    rejected: RejectedLog
    commands: CommandService
    bus: Bus
    events: EventLog
    rollups: RollupService
    health: DatabaseHealth
    components: ComponentStates = field(default_factory=ComponentStates)


@contextlib.asynccontextmanager
async def open_hub(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Hub]:
    """Open storage, start the batch writer; on exit flush everything accepted, then close."""
    batching = BatchingPolicy.of(settings)
    store = SqlStore(settings, batching=batching)
    async with contextlib.AsyncExitStack() as parts:
        parts.push_async_callback(store.close)
        if migrate:
            await store.upgrade()
        mirror = await parts.enter_async_context(_credential_mirror(settings))
        metrics = Metrics()
        bus = await parts.enter_async_context(bus_for(settings, metrics))
        events = EventLog(store=store, bus=bus, metrics=metrics, keep=settings.event_log_keep)
        sessions = SessionRegistry(metrics)
        auth = Authenticator(
            store=store, cache_seconds=settings.auth_cache_seconds, sessions=sessions, bus=bus
        )
        ingestor = Ingestor(store=store.readings, metrics=metrics, policy=batching, bus=bus)
        rejected = RejectedLog(store=store, metrics=metrics, keep=settings.rejected_keep)
        hub = Hub(
            settings=settings,
            store=store,
            metrics=metrics,
            auth=auth,
            sessions=sessions,
            tokens=TokenService(store=store, auth=auth),
            tickets=LiveTickets(store=store, ttl_seconds=settings.live_ticket_seconds),
            devices=DeviceService(store=store, auth=auth, events=events, mirror=mirror),
            ingestor=ingestor,
            ingest=IngestGate(
                auth=auth,
                ingestor=ingestor,
                rejected=rejected,
                limits=IngestLimits(
                    max_body_bytes=settings.max_body_bytes,
                    max_batch_readings=settings.max_batch_readings,
                    max_future_skew=settings.max_future_skew_seconds,
                ),
                known_metrics=store.readings,
            ),
            telemetry=TelemetryService(store=store),
            rejected=rejected,
            commands=CommandService(store=store, events=events),
            bus=bus,
            events=events,
            rollups=RollupService(
                store=store,
                metrics=metrics,
                lag_seconds=settings.rollup_lag_seconds,
                interval_seconds=settings.rollup_interval_seconds,
            ),
            health=DatabaseHealth(store=store),
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(ingestor.run(), name="ingest-writer")
            # Revocations from every process end this one's live sessions; as a backstop,
            # their tokens are looked up again as often as a cached token is.
            recheck = max(settings.auth_cache_seconds, 1.0)
            revocations = tasks.create_task(
                follow_revocations(bus, auth, recheck_seconds=recheck), name="revocations"
            )
            try:
                yield hub
            finally:
                revocations.cancel()
                ingestor.close()


@contextlib.asynccontextmanager
async def _credential_mirror(settings: Settings) -> AsyncIterator[CredentialMirror | None]:
    """Mosquitto's dynamic-security plugin, when an admin login for it is configured."""
    if not settings.mqtt_dynsec_username:
        yield None
        return
    async with provisioner_for(settings) as provisioner:
        await provisioner.ensure_roles()
        yield provisioner
