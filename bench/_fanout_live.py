"""Phases (1) and (2): live WebSocket delivery from telehub, and from a bare broadcast server."""

from __future__ import annotations

from typing import Any

from _fanout_clients import live_worker
from _fanout_plan import FRAME_INTERVAL_S, BareWs, Plan, Run, Step, metric
from _fanout_proc import Pool
from _fanout_stats import CpuMeter, Histogram
from _harness import Server
from _report import Figure, console

LATENCY_TARGET_S = 0.050
BEHIND_S = 1.0  # a step whose p99 latency is above this counts as fallen behind
RATE_TARGET = 0.7
QUIET_S, CAP_S = 2.0, 20.0  # waiting for the last deliveries of a step


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


def _merge(stats: list[dict[str, Any]]) -> tuple[Histogram, int, int, float]:
    hist = Histogram()
    gaps = unmatched = 0
    last = 0.0
    for s in stats:
        hist.update(s["hist"])
        gaps += s["gaps"]
        unmatched += s["unmatched"]
        last = max(last, s["last"])
    return hist, gaps, unmatched, last


class TelehubLive:
    """The live clients on telehub's /api/v1/ws, and the loader posting telemetry."""

    def __init__(self, run: Run, server: Server, clients: Pool, loader: Pool) -> None:
        self.run, self.server, self.clients, self.loader = run, server, clients, loader
        self.devices = run.fixture.devices[:100]
        self.seq = 0
        self.unmatched = 0
        url = f"ws://127.0.0.1:{server.port}/api/v1/ws?token={run.fixture.admin}"
        n = split(run.plan.clients, len(clients))
        clients.call_each([("connect", url, k, "telehub") for k in n])

    def step(self, rate: float, seconds: float) -> Step:
        per_post = self.run.plan.per_post(rate)
        self.clients.call("reset")
        meter = CpuMeter(
            {
                "telehub": [self.server.proc.pid],
                "clients": self.clients.pids,
                "loader": self.loader.pids,
            }
        )
        [load] = self.loader.call(
            "telemetry", self.server.base, self.devices, rate, seconds, per_post, self.seq
        )
        self.seq = load["next"]
        self.clients.call("settle", load["readings"], QUIET_S, CAP_S)
        cpu = meter.describe()
        stats = self.clients.call("stats", load["answers"])
        hist, gaps, unmatched, last = _merge(stats)
        self.unmatched += unmatched
        errors = [f"{load['error_count']} POSTs failed, e.g. {e}" for e in load["errors"][:1]]
        return Step(
            rate=rate,
            sent=load["readings"] if not errors else load["posts"] * per_post,
            counts=[c for s in stats for c in s["counts"]],
            gaps=gaps,
            hist=hist,
            start=load["start"],
            sent_end=load["last_answer"],
            last=last,
            seconds=seconds,
            cpu=cpu,
            errors=errors,
            extra=f"POST→202 p50 {1000 * load['post_p50']:.1f} / "
            f"p99 {1000 * load['post_p99']:.1f} ms",
        )


def telehub_live(run: Run, server: Server, loader: Pool) -> tuple[Step, list[Step]]:
    """(1) latency at the planned rate (no read pause), then (2) the rate steps."""
    plan = run.plan
    clients = run.own(Pool("live", live_worker, plan.client_procs))
    live = TelehubLive(run, server, clients, loader)
    live.step(plan.latency_rate, 1.0)  # warm-up: connections, caches, the first commits
    console.print(f"telehub: latency at {plan.latency_rate:,.0f} readings/s …")
    latency = live.step(plan.latency_rate, plan.latency_seconds)
    console.print(f"  {latency.describe()}", highlight=False)
    steps = [latency]
    clients.call("pause", plan.pause_s)
    for rate in plan.rate_steps:
        console.print(f"telehub: {rate:,.0f} readings/s …")
        steps.append(live.step(rate, plan.step_seconds))
        console.print(f"  {steps[-1].describe()}", highlight=False)
        if not steps[-1].ok(BEHIND_S):
            break
    clients.call("close")
    dropped = metric(server, run.fixture.admin, "telehub_bus_dropped_total")
    run.note(f"telehub_bus_dropped_total after the WebSocket steps: {dropped:,.0f}")
    if live.unmatched:
        run.note(f"[yellow]{live.unmatched} delivered readings matched no answered POST[/]")
    return latency, steps


def _bare_step(bare: BareWs, clients: Pool, rate: float, seconds: float, per_batch: int) -> Step:
    clients.call("reset")
    meter = CpuMeter({"bare": [bare.proc.pid], "clients": clients.pids})
    _, sent, first, last_sent = bare.command(f"run {rate} {seconds} {per_batch}")
    clients.call("settle", int(sent), QUIET_S, CAP_S)
    cpu = meter.describe()
    stats = clients.call("stats", None)
    hist, gaps, _, last = _merge(stats)
    return Step(
        rate=rate,
        sent=int(sent),
        counts=[c for s in stats for c in s["counts"]],
        gaps=gaps,
        hist=hist,
        start=float(first),
        sent_end=float(last_sent),
        last=last,
        seconds=seconds,
        cpu=cpu,
    )


def bare_live(run: Run) -> list[Step]:
    """(2)'s baseline: the same clients on a bare websockets server, fed the same
    readings/s in the same batches, coalescing them into frames on telehub's tick."""
    plan = run.plan
    bare = run.own(BareWs(run.workdir, compression=False))
    clients = run.own(Pool("live-bare", live_worker, plan.client_procs))
    n = split(plan.clients, len(clients))
    clients.call_each([("connect", bare.url, k, "bare") for k in n])
    clients.call("pause", plan.pause_s)
    rate = plan.latency_rate
    _bare_step(bare, clients, rate, 1.0, plan.per_post(rate))  # warm-up
    steps: list[Step] = []
    for rate in plan.rate_steps:
        console.print(f"bare websockets: {rate:,.0f} readings/s …")
        steps.append(_bare_step(bare, clients, rate, plan.step_seconds, plan.per_post(rate)))
        console.print(f"  {steps[-1].describe()}", highlight=False)
        if not steps[-1].ok(BEHIND_S):
            break
    clients.call("close")
    return steps


def best(steps: list[Step]) -> Step | None:
    passed = [s for s in steps if s.ok(BEHIND_S)]
    return max(passed, key=lambda s: s.rate_delivered) if passed else None


def live_figures(run: Run, latency: Step, hub: list[Step], bare: list[Step], plan: Plan) -> None:
    ok = latency.complete and latency.gaps == 0 and latency.hist.quantile(0.99) <= LATENCY_TARGET_S
    run.report.figures.append(
        Figure(
            f"WS latency, {plan.latency_rate:,.0f} readings/s to {plan.clients} clients "
            "(202 answer → client)",
            f"p50 {latency.hist.ms(0.5)} ms, p99 {latency.hist.ms(0.99)} ms; "
            f"{latency.deliveries:,}/{latency.sent * plan.clients:,} delivered, "
            f"{latency.gaps} gaps",
            "— (absolute target)",
            None,
            f"p99 ≤ {LATENCY_TARGET_S * 1000:.0f} ms, all, no gap",
            ok,
        )
    )
    top, base = best(hub), best(bare)
    ratio = top.rate_delivered / base.rate_delivered if top and base else None
    run.report.figures.append(
        Figure(
            f"WS deliveries/s without gaps ({plan.clients} clients)",
            f"{top.rate_delivered:,.0f} (at {top.rate:,.0f} readings/s)" if top else "none passed",
            f"{base.rate_delivered:,.0f} (at {base.rate:,.0f} readings/s, bare websockets, "
            f"a frame per {1000 * FRAME_INTERVAL_S:g} ms tick, broadcast)"
            if base
            else "none passed",
            ratio,
            f"ratio ≥ {RATE_TARGET}",
            ratio is not None and ratio >= RATE_TARGET,
        )
    )
    run.note("telehub steps (readings/s → all clients): ")
    for s in hub:
        run.note(f"  {s.describe()}")
    run.note(
        "bare websockets steps (readings/s → all clients; the batches made each "
        f"{1000 * FRAME_INTERVAL_S:g} ms tick sent as one frame, as telehub coalesces): "
    )
    for s in bare:
        run.note(f"  {s.describe()}")
