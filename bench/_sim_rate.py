"""The simulator's highest steady rate on each transport, for bench/clients.py.

Each transport gets a fresh ``telehub serve`` (HTTP, gRPC and its embedded MQTT broker,
each on a free port) and database. A fleet of ``devices`` is provisioned once (each
device then sends with its own token), warmed up, and the target rate doubles from
``START_RATE`` until a step is not steady, then bisects between the last steady and the
first unsteady rate until they are within ``CLOSE_ENOUGH``. A step is one run of
:func:`telehub.sim.runner.simulate` (the simulator's Python API) in this process, on
uvloop, for ``step_s`` seconds; it is steady when the hub acknowledged at least
``STEADY`` of the target rate and nothing failed. A step that is not steady runs once
more, and the second run decides.

"Acknowledged" means the hub acknowledged it. HTTP answers 202 and gRPC its
PublishSummary only after the commit: the simulator's own count and latency. An MQTT
device only gets a PUBACK, and the embedded broker sends it on receipt, before the
commit; so an MQTT message counts once the hub's live feed (a WebSocket subscription,
frames unbatched: ``TELEHUB_WS_FRAME_INTERVAL_SECONDS=0``) shows it committed, and its
latency runs from hand-over to that frame. The feed runs during every step on every
transport, so each pays the same fan-out. After each transport, the readings stored
for its fleet must equal those it acknowledged (PUBACKs for MQTT).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from _grpc_load import Usage
from _harness import (
    TELEHUB,
    Backend,
    Server,
    drop_backend,
    free_port,
    make_backend,
    run_async,
    setup_hub,
)
from _report import Figure, Report, console
from _sim_feed import SETTLE_S, Commits
from telehub.client.http_async import AsyncClient
from telehub.sim.runner import SimConfig, TransportName, provision_fleet, simulate
from telehub.sim.stats import percentile
from telehub.sim.transports import SimDevice

TRANSPORTS: tuple[TransportName, ...] = ("http", "grpc", "mqtt")
STEADY = 0.95  # of the target rate, acknowledged by the hub
START_RATE = 500.0  # msg/s
MAX_RATE = 32_000.0
CLOSE_ENOUGH = 1.2  # bisect until the first unsteady rate is within 20% of the last steady
WARMUP = (200.0, 1.0)  # rate, seconds: connections, caches, the database's pages


@dataclass(frozen=True)
class SimPlan:
    transports: tuple[TransportName, ...]
    step_s: float
    devices: int = 100
    window: int = 64  # the simulator's default


def parse_transports(text: str) -> tuple[TransportName, ...]:
    """Some of ``http,grpc,mqtt`` (measured in that order), or ``none``."""
    names = [t for t in text.split(",") if t and t != "none"]
    chosen = tuple(t for t in TRANSPORTS if t in names)
    if len(chosen) != len(names):
        raise ValueError(f"--sim takes some of {','.join(TRANSPORTS)}, or none")
    return chosen


@dataclass
class Step:
    transport: TransportName
    rate: float
    summary: dict[str, Any]
    usage: Usage
    seen: int  # messages the live feed showed committed
    seen_rate: float
    seen_ms: dict[str, float | None]  # p50, p99 from hand-over to the live feed
    gaps: int
    postgres: bool

    @property
    def achieved(self) -> float:
        """Messages per second the hub acknowledged (committed, for MQTT)."""
        return self.seen_rate if self.transport == "mqtt" else self.summary["achieved_rate"]

    @property
    def p99_ms(self) -> float | None:
        return self.latency_ms["p99"]

    @property
    def latency_ms(self) -> dict[str, float | None]:
        """Hand-over to the hub's acknowledgement (for MQTT: to the commit on the feed)."""
        return self.seen_ms if self.transport == "mqtt" else self.summary["latency_ms"]

    @property
    def errors(self) -> int:
        s = self.summary
        return s["error_total"] + s["in_flight"] + (s["acknowledged"] - self.seen) + self.gaps

    @property
    def steady(self) -> bool:
        return self.errors == 0 and self.achieved >= STEADY * self.rate

    def describe(self) -> str:
        s, lat = self.summary, self.summary["latency_ms"]
        odd = {**s["errors"], **({"feed_gaps": self.gaps} if self.gaps else {})}
        if s["acknowledged"] != self.seen:
            odd["not_seen_committed"] = s["acknowledged"] - self.seen
        puback = (
            f"; PUBACK p50/p99 {_ms(lat['p50'])}/{_ms(lat['p99'])}"
            if self.transport == "mqtt"
            else ""
        )
        shares = self.usage.shares(postgres=self.postgres)
        pg = f"postgres {100 * shares['postgres']:.0f}%, " if self.postgres else ""
        return (
            f"{self.rate:,.0f} → {self.achieved:,.0f} msg/s, p50/p99 "
            f"{_ms(self.latency_ms['p50'])}/{_ms(self.p99_ms)}"
            f"{puback}, {'steady' if self.steady else 'NOT steady'}{f' {odd}' if odd else ''}; "
            f"CPU server {100 * shares['server']:.0f}%, {pg}simulator "
            f"{100 * shares['clients']:.0f}%, machine {100 * self.usage.busy / self.usage.wall:.0f}"
            f"% of {100 * (os.cpu_count() or 1)}%"
        )


@dataclass
class Outcome:
    transport: TransportName
    steps: list[Step] = field(default_factory=list)
    acknowledged_readings: int = 0
    stored: int = 0

    @property
    def best(self) -> Step | None:
        steady = [s for s in self.steps if s.steady]
        return max(steady, key=lambda s: s.rate) if steady else None

    @property
    def limit(self) -> Step | None:
        """The lowest unsteady step above the best: where the rate broke."""
        best = self.best.rate if self.best else 0.0
        above = [s for s in self.steps if not s.steady and s.rate > best]
        return min(above, key=lambda s: s.rate) if above else None


class SimHub:
    """``telehub serve`` on free ports, with the simulator's fleets and runs."""

    def __init__(self, backend: Backend, admin: str, plan: SimPlan) -> None:
        self.plan, self.admin = plan, admin
        self.grpc_port, self.mqtt_port = free_port(), free_port()
        env = {
            **backend.env(),
            "TELEHUB_MQTT_URL": "embedded",
            "TELEHUB_WS_FRAME_INTERVAL_SECONDS": "0",
        }
        argv = [
            str(TELEHUB),
            "serve",
            "--grpc-port",
            str(self.grpc_port),
            "--mqtt-port",
            str(self.mqtt_port),
        ]
        self.server = Server(f"serve-{backend.name}", argv, env, backend.workdir)
        self.pg = backend.is_pg

    def config(self, transport: TransportName, rate: float, seconds: float) -> SimConfig:
        return SimConfig(
            devices=self.plan.devices,
            rate=rate,
            duration=seconds,
            transport=transport,
            token=self.admin,
            url=self.server.base,
            grpc_target=f"127.0.0.1:{self.grpc_port}",
            mqtt_url=f"mqtt://127.0.0.1:{self.mqtt_port}",
            prefix=f"rate{transport}",
            window=self.plan.window,
            fail_share=0.0,
        )

    async def step(
        self, transport: TransportName, rate: float, seconds: float, fleet: list[SimDevice]
    ) -> Step:
        commits = Commits(time.time())
        async with asyncio.TaskGroup() as group:
            feed = group.create_task(commits.watch(self.server.base, self.admin), name="feed")
            await asyncio.wait_for(commits.ready.wait(), 10)
            before = Usage.snap(self.server.proc.pid, postgres=self.pg)
            stats = await simulate(self.config(transport, rate, seconds), devices=fleet)
            usage = Usage.snap(self.server.proc.pid, postgres=self.pg) - before
            # The hub drained (MQTT: PUBACKs come before commits) before the next step.
            await commits.settle(stats.acknowledged)
            feed.cancel()
        summary = stats.summary()
        last = max((mono for _, mono in commits.seen.values()), default=stats.started)
        span = max(last, stats.ended or last) - stats.started
        latencies = sorted(lat for lat, _ in commits.seen.values())
        ms = {f"p{q}": percentile(latencies, q) for q in (50, 99)}
        return Step(
            transport,
            rate,
            summary,
            usage,
            len(commits.seen),
            len(commits.seen) / span if span > 0 else 0.0,
            {k: None if v is None else round(1000 * v, 3) for k, v in ms.items()},
            commits.gaps,
            self.pg,
        )

    async def stored(self, fleet: list[SimDevice], since: datetime) -> int:
        """Readings stored for the fleet since ``since``, counted by the hub."""
        total = 0
        until = datetime.now(UTC) + timedelta(minutes=1)
        async with AsyncClient(self.server.base, token=self.admin) as client:
            for device in fleet:
                series = await client.query(
                    device.device_id, start=since, end=until, interval="1d", agg="count"
                )
                total += sum(round(p.value) for points in series.series.values() for p in points)
        return total

    def measure(self, transport: TransportName, log: Callable[[str], None]) -> Outcome:
        outcome = Outcome(transport)
        since = datetime.now(UTC) - timedelta(seconds=1)
        fleet = run_async(provision_fleet(self.config(transport, 1.0, 1.0)))
        warm = run_async(self.step(transport, *WARMUP, fleet))
        acked = [warm.summary["readings_acknowledged"]]

        def probe(rate: float) -> bool:
            # A step that is not steady runs once more and the second run decides: one
            # stall of a shared machine should not end the search (both are shown).
            for again in ("", " (again)"):
                step = run_async(self.step(transport, rate, self.plan.step_s, fleet))
                outcome.steps.append(step)
                acked.append(step.summary["readings_acknowledged"])
                log(f"  {transport}{again}: {step.describe()}")
                if step.steady:
                    return True
            return False

        search(probe)
        outcome.acknowledged_readings = sum(acked)
        deadline = time.monotonic() + SETTLE_S
        while True:  # MQTT: a PUBACK comes before the commit
            outcome.stored = run_async(self.stored(fleet, since))
            if outcome.stored >= outcome.acknowledged_readings or time.monotonic() > deadline:
                return outcome
            time.sleep(0.2)


def search(steady: Callable[[float], bool]) -> None:
    """Double the rate until it is not steady, then bisect (geometrically)."""
    good: float | None = None
    bad: float | None = None
    rate = START_RATE
    while rate <= MAX_RATE:
        if steady(rate):
            good, rate = rate, rate * 2
        else:
            bad = rate
            break
    while good is not None and bad is not None and bad / good > CLOSE_ENOUGH:
        rate = round(math.sqrt(good * bad), -1)
        if steady(rate):
            good = rate
        else:
            bad = rate


def bench_sim(name: str, plan: SimPlan) -> Report:
    """Every transport of the plan, each against a fresh ``telehub serve`` on ``name``."""
    rep = Report(name)
    outcomes = []
    for transport in plan.transports:
        console.print(f"[bold]{name}[/]: simulate --transport {transport}, stepping …")
        outcomes.append(_measure_on_fresh_hub(name, transport, plan, rep.notes.append))
    rep.figures += figures(outcomes, plan)
    rep.notes.append(
        "acknowledged: HTTP 202 and gRPC PublishSummary (both after the commit); MQTT: seen "
        "committed on the hub's live feed (its PUBACK comes from the embedded broker on "
        "receipt); latency from hand-over; CPU shares of one core, simulator = this process "
        "(simulator and live feed); each transport ran against a fresh hub and database"
    )
    return rep


def _measure_on_fresh_hub(
    name: str, transport: TransportName, plan: SimPlan, log: Callable[[str], None]
) -> Outcome:
    """A new database and server per transport: no figure depends on what ran before."""
    backend = make_backend(name)
    try:
        admin = run_async(setup_hub(backend, 0)).admin
        hub = SimHub(backend, admin, plan)
        try:
            hub.server.wait_ready()
            return hub.measure(transport, log)
        finally:
            hub.server.stop()
    finally:
        run_async(drop_backend(backend))


def figures(outcomes: list[Outcome], plan: SimPlan) -> list[Figure]:
    out = []
    for o in outcomes:
        best, limit = o.best, o.limit
        above = (
            f"{limit.rate:,.0f} asked: {limit.achieved:,.0f} msg/s, p99 {_ms(limit.p99_ms)}"
            if limit
            else f"none up to {MAX_RATE:,.0f} msg/s"
        )
        out.append(
            Figure(
                f"simulate --transport {o.transport}, {plan.devices} devices",
                f"{best.rate:,.0f} msg/s, p99 {_ms(best.p99_ms)}" if best else "none steady",
                above,
                best.achieved / best.rate if best else None,
                f"≥ {STEADY:g}, no errors",
                best is not None,
            )
        )
    out.append(
        Figure(
            "readings stored = acknowledged",
            "; ".join(f"{o.transport} {o.stored:,}" for o in outcomes),
            "; ".join(f"{o.transport} {o.acknowledged_readings:,}" for o in outcomes),
            None,
            "equal",
            all(o.stored == o.acknowledged_readings for o in outcomes),
        )
    )
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
