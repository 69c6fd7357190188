"""telehub SDK benchmark: single-reading posts through the Python clients, each figure
next to a baseline measured in the same run; then the simulator's highest steady rate
on each transport.

    .venv/bin/python bench/clients.py [--backend sqlite|postgres|both] [--quick]
        [--posts 10000] [--concurrency 50] [--no-sdk]
        [--sim http,grpc,mqtt|none] [--sim-step 4] [--sim-devices 100] [--sim-window 64]

``--posts`` telemetry posts of one reading each (every one at its own timestamp, so
every one is new) go to one ``telehub api`` process, from this process, three ways:

(1) ``telehub.client.Client.send_telemetry``, one after the other, on the client's one
    requests.Session (keep-alive);
(2) ``telehub.client.AsyncClient.send_telemetry`` with ``--concurrency`` posts in flight
    (as many tasks taking the next post from one iterator; the client's own
    ``concurrency`` is the same), on uvloop like the other benchmarks' load;
(3) plain ``requests.post(url, json=..., headers=...)`` without a Session, i.e. a new
    connection per post, one after the other.

Targets: AsyncClient ≥ 5x the sequential Client; the Client with its Session ≥ 2x plain
requests.post. Each client kind posts to a device of its own with that device's token;
the posts are split over two rounds in which the three run in turn (the second round in
reverse order), to share the noise, after a short untimed warm-up of each. Every answer
must say ``accepted == 1``, and the server must hold exactly the readings posted: it
counts them itself (``GET .../telemetry?interval=1d&agg=count`` over the timed range)
and its /metrics count the readings committed while the posts ran. Where the CPU went is
printed per client kind, with this process's CPU per post (what a Session saves shows
there). A lone post also waits for company in its commit, until ``ingest_batch_quiet``
passes without a new one (at most ``ingest_batch_max_wait``), and the sequential figures
include that wait; try TELEHUB_INGEST_BATCH_MAX_WAIT=0 to see the clients alone
(TELEHUB_INGEST_* pass through to the server). The machine is shared and noisy: the
ratios are what count. Nothing here asserts.

The simulator part (bench/_sim_rate.py) runs ``telehub simulate``'s Python API, per
transport, against a fresh ``telehub serve`` on free ports (its embedded MQTT broker
included), stepping the target rate up (doubling, then bisecting) until less than 95% of
it is acknowledged by the hub or an error appears, and prints per transport the highest
steady rate and the p99 acknowledgement latency there, each step with the CPU of the
server, of this process and of the whole machine.
"""

from __future__ import annotations

import argparse
import signal
import time
from dataclasses import dataclass, field

from _clients_post import KINDS, Stamps, Tally, Target, count_stored, post
from _grpc_load import Usage
from _harness import (
    Backend,
    CommitStats,
    Fixture,
    Server,
    drop_backend,
    make_backend,
    run_async,
    scrape,
    setup_hub,
)
from _report import Figure, Report, console, header, show
from _sim_rate import TRANSPORTS, SimPlan, bench_sim, parse_transports

ORDER = ("sync", "async", "plain")  # the first round's order; the second runs it reversed
ASYNC_TARGET = 5.0  # AsyncClient / sequential Client
SESSION_TARGET = 2.0  # Client / requests.post


@dataclass(frozen=True)
class Plan:
    posts: int  # per client kind, over all rounds
    rounds: int
    warmup: int  # untimed posts per client kind before the rounds
    concurrency: int  # of the AsyncClient

    def timed(self) -> range:
        """The sequence numbers of the timed posts (the warm-up has the ones before)."""
        return range(self.warmup, self.warmup + self.posts)

    def chunks(self) -> list[range]:
        """The timed posts of each round: consecutive, as even as they split."""
        size, extra = divmod(self.posts, self.rounds)
        out, start = [], self.warmup
        for r in range(self.rounds):
            stop = start + size + (r < extra)
            out.append(range(start, stop))
            start = stop
        return out


@dataclass
class Measured:
    """One client kind over all rounds: what it sent, the server's commits, the CPU."""

    rounds: list[Tally] = field(default_factory=list)
    commits: CommitStats = field(default_factory=CommitStats)
    usage: Usage = field(default_factory=lambda: Usage(0.0, 0.0, 0.0, 0.0, 0.0))

    @property
    def total(self) -> Tally:
        return sum(self.rounds, Tally())

    @property
    def rate(self) -> float:
        return self.total.rate


@dataclass
class Run:
    backend: Backend
    server: Server
    fixture: Fixture
    plan: Plan
    stamps: Stamps = field(default_factory=Stamps.hour_ago)
    measured: dict[str, Measured] = field(default_factory=lambda: {k: Measured() for k in ORDER})
    stored: dict[str, int] = field(default_factory=dict)

    def target(self, kind: str) -> Target:
        device_id, token = self.fixture.devices[ORDER.index(kind)]
        return Target(self.server.base, device_id, token)

    def phase(self, kind: str, seqs: range) -> None:
        pid, pg = self.server.proc.pid, self.backend.is_pg
        before, use = scrape(self.server, self.fixture.admin), Usage.snap(pid, postgres=pg)
        tally = post(kind, self.target(kind), seqs, self.stamps, self.plan.concurrency)
        use = Usage.snap(pid, postgres=pg) - use
        stats = scrape(self.server, self.fixture.admin) - before
        m = self.measured[kind]
        m.rounds.append(tally)
        m.commits = _add(m.commits, stats)
        m.usage = m.usage + use

    def rounds(self) -> None:
        warm = range(0, self.plan.warmup)
        for kind in ORDER:  # connections, caches, token lookups, the database's pages
            tally = post(kind, self.target(kind), warm, self.stamps, self.plan.concurrency)
            if tally.acked != len(warm):
                raise RuntimeError(f"warm-up {kind}: {dict(tally.odd)}")
        for r, seqs in enumerate(self.plan.chunks()):
            for kind in ORDER if r % 2 == 0 else ORDER[::-1]:
                self.phase(kind, seqs)
        for kind in ORDER:
            device_id = self.target(kind).device_id
            self.stored[kind] = count_stored(
                self.server.base, self.fixture.admin, device_id, self.stamps, self.plan.timed()
            )


def _add(a: CommitStats, b: CommitStats) -> CommitStats:
    """Two phases' commit figures together (CommitStats only subtracts)."""
    old = dict(a.buckets)
    buckets = tuple((le, n + old.get(le, 0.0)) for le, n in b.buckets)
    return CommitStats(
        a.commits + b.commits, a.readings + b.readings, a.seconds + b.seconds, buckets
    )


def figures(run: Run) -> list[Figure]:
    m, plan = run.measured, run.plan
    sync, asyn, plain = m["sync"].rate, m["async"].rate, m["plain"].rate
    posted = sum(x.total.posts for x in m.values())
    acked = sum(x.total.acked for x in m.values())
    stored = sum(run.stored.values())
    committed = round(sum(x.commits.readings for x in m.values()))
    return [
        Figure(
            f"AsyncClient, {plan.concurrency} concurrent",
            f"{asyn:,.0f} posts/s",
            f"{sync:,.0f} posts/s (Client, sequential)",
            asyn / sync,
            f"ratio ≥ {ASYNC_TARGET:g}",
            asyn / sync >= ASYNC_TARGET,
        ),
        Figure(
            "Client, sequential, one Session",
            f"{sync:,.0f} posts/s",
            f"{plain:,.0f} posts/s (requests.post, no Session)",
            sync / plain,
            f"ratio ≥ {SESSION_TARGET:g}",
            sync / plain >= SESSION_TARGET,
        ),
        Figure(
            "posts acknowledged (accepted == 1)",
            f"{acked:,} of {posted:,}",
            "-",
            None,
            "all",
            acked == posted,
        ),
        Figure(
            "readings stored (agg=count)",
            f"{stored:,}",
            f"{posted:,} posted; /metrics: {committed:,} committed",
            None,
            "= posted",
            stored == posted == committed,
        ),
    ]


def notes(run: Run) -> list[str]:
    out = []
    pg = run.backend.is_pg
    for kind in ORDER:
        m = run.measured[kind]
        total = m.total
        label = KINDS[kind].format(concurrency=run.plan.concurrency)
        per_round = ", ".join(f"{t.rate:,.0f}" for t in m.rounds)
        out += [
            f"{label}: {total.posts:,} posts in {total.seconds:.1f} s, per round "
            f"{per_round} posts/s; latency p50 {total.p50_ms():.2f} ms; "
            f"stored {run.stored[kind]:,}",
            f"  server commits {m.commits.commits:,.0f}, mean {m.commits.mean_batch:.1f} "
            f"readings/commit, mean commit {m.commits.mean_commit_ms:.2f} ms; "
            f"CPU (of one core) {m.usage.describe(postgres=pg)}, "
            f"this process {1000 * m.usage.client / max(1, total.posts):.2f} ms a post",
        ]
        if total.odd:
            out.append(f"  [red]answers other than accepted=1[/]: {dict(total.odd)}")
    knobs = run.backend.settings()
    if knobs.ingest_batch_max_wait > 0:
        out.append(
            "a lone post waits for company in its commit until ingest_batch_quiet = "
            f"{1000 * knobs.ingest_batch_quiet:g} ms pass without one (at most "
            f"ingest_batch_max_wait = {1000 * knobs.ingest_batch_max_wait:g} ms): the "
            "sequential clients' latency includes it, whatever the connection costs "
            "(TELEHUB_INGEST_BATCH_MAX_WAIT=0 shows the clients alone)"
        )
    return out + _complaints(run.server)


def _complaints(server: Server) -> list[str]:
    bad = [
        ln
        for ln in server.log_path.read_text(errors="replace").splitlines()
        if ln.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback"))
    ]
    if not bad:
        return []
    return [f"[yellow]{server.label} logged {len(bad)} warnings/errors[/], first: {bad[0]}"]


def bench_backend(name: str, plan: Plan) -> Report:
    rep = Report(name)
    backend = make_backend(name)
    try:
        fixture = run_async(setup_hub(backend, len(ORDER)))
        server = Server.telehub(backend)
        try:
            server.wait_ready()
            run = Run(backend, server, fixture, plan)
            console.print(f"[bold]{name}[/]: warm-up and {plan.rounds} rounds …")
            run.rounds()
        finally:
            server.stop()
        rep.figures += figures(run)
        rep.notes += notes(run)
    finally:
        run_async(drop_backend(backend))
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="2,000 posts a kind (~45 s a backend)")
    parser.add_argument("--posts", type=int, help="posts per client kind (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="AsyncClient posts in flight")
    parser.add_argument("--no-sdk", action="store_true", help="only the simulator's rates")
    parser.add_argument("--sim", default=",".join(TRANSPORTS), help="transports, or none")
    parser.add_argument("--sim-step", type=float, help="seconds a rate step (default 4)")
    parser.add_argument("--sim-devices", type=int, default=100, help="simulated devices")
    parser.add_argument("--sim-window", type=int, default=64, help="simulator's --window")
    args = parser.parse_args()
    posts = args.posts or (2_000 if args.quick else 10_000)
    if posts < 2 or args.concurrency < 1:
        parser.error("--posts must be ≥ 2 and --concurrency ≥ 1")
    try:
        sims = parse_transports(args.sim)
    except ValueError as exc:
        parser.error(str(exc))
    if args.sim_devices < 1 or args.sim_window < 1:
        parser.error("--sim-devices and --sim-window must be ≥ 1")
    plan = Plan(posts, rounds=2, warmup=100 if args.quick else 300, concurrency=args.concurrency)
    step = args.sim_step or (2.0 if args.quick else 4.0)
    sim_plan = SimPlan(sims, step_s=step, devices=args.sim_devices, window=args.sim_window)
    # SIGTERM unwinds like Ctrl-C, through every finally that stops the server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shown = f"{plan}; {sim_plan}" if not args.no_sdk else str(sim_plan)
    header("telehub clients bench", shown, "server knobs")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for name in names:
        t0 = time.perf_counter()
        if not args.no_sdk:
            rep = bench_backend(name, plan)
            show(rep, "telehub SDK posts", "telehub", time.perf_counter() - t0)
        if sims:
            t0 = time.perf_counter()
            rep = bench_sim(name, sim_plan)
            show(
                rep,
                f"simulator steady rate, {step:g} s steps",
                "telehub simulate",
                time.perf_counter() - t0,
            )


if __name__ == "__main__":
    main()
