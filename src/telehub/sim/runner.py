"""The simulator's core: provision, then send at a steady total rate, window-bounded.

Message ``i`` is due at ``start + i / rate`` and goes to device ``i mod N``;
each is sent by a task that holds one slot of the window, so at most
``window`` sends are in flight and tasks never pile up: when the hub is slow
the pacer waits for a slot (and the achieved rate shows it). A run reaches
at most ``window / latency`` messages per second; a saturated hub's latency
grows until the window is full, so a full window is the symptom of a slow hub
(a larger one only lengthens its queue).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from telehub.client.http_async import AsyncClient
from telehub.client.http_client import DEFAULT_URL
from telehub.client.tls import Verify
from telehub.sim.mqtt import MqttTransport, parse_mqtt_url
from telehub.sim.provision import provision
from telehub.sim.signals import DeviceSignals, Shares
from telehub.sim.stats import Stats
from telehub.sim.transports import (
    GrpcTransport,
    HttpTransport,
    SimDevice,
    Transport,
    Values,
    error_kind,
)

log = logging.getLogger(__name__)

TransportName = Literal["http", "grpc", "mqtt"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One run of the simulator; validated on construction."""

    devices: int
    rate: float  # messages per second, all devices together
    duration: float  # seconds
    transport: TransportName = "http"
    token: str = ""  # admin: provisions the devices; each device sends with its own token
    url: str = DEFAULT_URL
    verify: Verify = True  # the API's certificate, as the SDK's verify= (client/tls.py)
    # None: where the hub says its listeners are (GET /api/v1/info), never a guess.
    grpc_target: str | None = None
    mqtt_url: str | None = None
    prefix: str = "sim"
    fail_share: float = 0.1
    seed: int = 0
    window: int = 64
    timeout: float = 10.0
    ack_delay: float = 0.2
    spike_share: float = 0.01
    dropout_share: float = 0.02

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("--devices must be at least 1")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("--rate and --duration must be positive")
        if self.window < 1 or self.timeout <= 0:
            raise ValueError("the window must be at least 1 and the timeout positive")
        if self.transport not in ("http", "grpc", "mqtt"):
            raise ValueError(f"unknown transport {self.transport!r}")
        if not 0.0 <= self.fail_share <= 1.0:
            raise ValueError("--fail-share must be within [0, 1]")
        if self.transport == "mqtt" and self.mqtt_url is not None:
            parse_mqtt_url(self.mqtt_url)
        Shares(spike=self.spike_share, dropout=self.dropout_share)

    def stats(self) -> Stats:
        return Stats(transport=self.transport, devices=self.devices, target_rate=self.rate)

    @property
    def endpoint(self) -> str:
        """Where this run's messages go (once :func:`with_hub_endpoints` filled it in)."""
        if self.transport == "mqtt":
            return self.mqtt_url or ""
        if self.transport == "grpc":
            return self.grpc_target or ""
        return self.url


async def with_hub_endpoints(config: SimConfig) -> SimConfig:
    """``config`` with the listener it leaves open filled in from the hub's own word.

    A guessed port can be some other program's: a broker on 1883 that is not the
    hub's acknowledges every message and stores none. A flag given wins.
    """
    if config.transport == "http" or config.endpoint:
        return config
    async with AsyncClient(config.url, verify=config.verify) as client:
        info = await client.info()
    if config.transport == "mqtt":
        return replace(config, mqtt_url=info.mqtt.urls[0])
    return replace(config, grpc_target=info.grpc.target)


async def provision_fleet(config: SimConfig) -> list[SimDevice]:
    """The run's devices, created (or taken over) with the operator's token."""
    async with AsyncClient(config.url, token=config.token, verify=config.verify) as admin:
        return await provision(admin, prefix=config.prefix, count=config.devices)


async def simulate(
    config: SimConfig,
    *,
    stats: Stats | None = None,
    stop: asyncio.Event | None = None,
    devices: list[SimDevice] | None = None,
) -> Stats:
    """Run the simulation to its end (or ``stop``); the counts are in the returned Stats.

    Pass ``stats`` to watch the counts while it runs, and ``devices`` (from
    :func:`provision_fleet`) to run the same fleet again without provisioning.
    """
    stats = stats or config.stats()
    config = await with_hub_endpoints(config)
    stats.endpoint = config.endpoint
    if devices is None:
        devices = await provision_fleet(config)
    elif len(devices) != config.devices:
        raise ValueError(f"{len(devices)} devices given for a run of {config.devices}")
    shares = Shares(spike=config.spike_share, dropout=config.dropout_share)
    signals = [
        DeviceSignals(seed=config.seed * 1_000_003 + n, shares=shares) for n in range(len(devices))
    ]
    async with _transport(config, devices, stats) as transport:
        stats.started = time.monotonic()
        stats.began_at = datetime.now(UTC)
        try:
            await _pace(config, transport, devices, signals, stats, stop or asyncio.Event())
        finally:
            stats.ended = time.monotonic()
            stats.ended_at = datetime.now(UTC)
    return stats


def _transport(config: SimConfig, devices: list[SimDevice], stats: Stats) -> Transport:
    if config.transport == "http":
        return HttpTransport(
            config.url, window=config.window, timeout=config.timeout, verify=config.verify
        )
    if config.transport == "grpc":
        return GrpcTransport(config.endpoint, timeout=config.timeout)
    return MqttTransport(
        config.endpoint,
        devices,
        stats=stats,
        timeout=config.timeout,
        fail_share=config.fail_share,
        ack_delay=config.ack_delay,
        seed=config.seed,
    )


async def _pace(
    config: SimConfig,
    transport: Transport,
    devices: list[SimDevice],
    signals: list[DeviceSignals],
    stats: Stats,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    window = asyncio.Semaphore(config.window)
    total = max(1, round(config.rate * config.duration))
    interval = 1.0 / config.rate
    async with asyncio.TaskGroup() as group:
        background = group.create_task(transport.serve(), name="sim-transport-serve")
        start = loop.time()
        end = start + config.duration
        for i in range(total):
            delay = start + i * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set() or loop.time() > end:
                stats.missed += total - i
                break
            device = i % len(devices)
            ts = datetime.now(UTC)
            values = signals[device].sample(ts.timestamp())
            if not values:  # every sensor dropped out: nothing to send this time
                stats.skipped += 1
                continue
            await window.acquire()
            stats.sent += 1
            stats.readings_sent += len(values)
            stats.in_flight += 1
            group.create_task(
                _send(transport, devices[device], values, ts, stats, window),
                name=f"sim-send-{i}",
            )
        # Every send is bounded by the timeout: holding all slots means all ended.
        for _ in range(config.window):
            await window.acquire()
        background.cancel()


async def _send(
    transport: Transport,
    device: SimDevice,
    values: Values,
    ts: datetime,
    stats: Stats,
    window: asyncio.Semaphore,
) -> None:
    began = time.monotonic()
    try:
        ack = await transport.send(device, values, ts)
    except Exception as exc:  # counted by kind: the run goes on, as a fleet would
        stats.record_error(error_kind(exc))
        log.debug("send from %s failed", device.device_id, exc_info=True)
    else:
        stats.record_ack(
            device.device_id,
            readings=ack.readings,
            duplicates=ack.duplicates,
            latency_s=time.monotonic() - began,
        )
    finally:
        stats.in_flight -= 1
        window.release()
