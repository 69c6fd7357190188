"""telehub SDK benchmark: single-reading posts through the Python clients, each figure
next to a baseline measured in the same run; then the simulator's highest steady rate
on each transport.

    .venv/bin/python bench/clients.py [--backend sqlite|postgres|both] [--quick]
        [--posts 10000] [--concurrency 50] [--no-sdk] [--tls-posts 2000 | --no-tls]
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

Then (1) and (3) again over HTTPS, ``--tls-posts`` each (default 2,000: a full TLS
handshake per plain post makes this part slow), against a second ``telehub api`` on the
same database serving a certificate of a CA made for the run (bench/_clients_tls.py),
both clients given that CA as ``verify=`` like any user of a self-signed hub. Nothing
emulates latency: these are real handshakes over loopback.

Targets: AsyncClient ≥ 5x the sequential Client; the Client with its Session ≥ 2x plain
requests.post, over HTTP and over HTTPS, each its own row. Each client kind posts to a
device of its own with that device's token; the posts are split over two rounds in which
the kinds run in turn (the second round in reverse order), to share the noise, after a
short untimed warm-up of each. Every answer must say ``accepted == 1``, and the server
must hold exactly the readings posted: it counts them itself (``GET
.../telemetry?interval=1d&agg=count`` over the timed range) and its /metrics count the
readings committed while the posts ran. Where the CPU went is printed per client kind,
with this process's CPU per post (what a Session saves shows there). With
TELEHUB_INGEST_BATCH_QUIET > 0 (TELEHUB_INGEST_* pass through to the server) a lone post
also waits for company in its commit, and the sequential figures include that wait. The
machine is shared and noisy: the ratios are what count. Nothing here asserts.

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
from _clients_tls import Tls, handshake, make_tls
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
from _report import (
    Figure,
    Report,
    Shown,
    command,
    console,
    header,
    result_name,
    save_results,
    show,
)
from _sim_rate import TRANSPORTS, SimPlan, bench_sim, parse_transports

ORDER = ("sync", "async", "plain")  # the first round's order; the second runs it reversed
TLS_ORDER = ("sync", "plain")
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
    """The client kinds ``kinds`` against one server, each posting to its own device."""

    backend: Backend
    server: Server
    fixture: Fixture
    plan: Plan
    kinds: tuple[str, ...] = ORDER
    first_device: int = 0  # kind i posts to fixture.devices[first_device + i]
    verify: bool | str = True
    stamps: Stamps = field(default_factory=Stamps.hour_ago)
    measured: dict[str, Measured] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.measured = {k: Measured() for k in self.kinds}

    @property
    def scheme(self) -> str:
        return "HTTPS" if self.server.ca else "HTTP"

    def target(self, kind: str) -> Target:
        device_id, token = self.fixture.devices[self.first_device + self.kinds.index(kind)]
        return Target(self.server.base, device_id, token, self.verify)

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
        for kind in self.kinds:  # connections, caches, token lookups, the database's pages
            tally = post(kind, self.target(kind), warm, self.stamps, self.plan.concurrency)
            if tally.acked != len(warm):
                raise RuntimeError(f"warm-up {kind}: {dict(tally.odd)}")
        for r, seqs in enumerate(self.plan.chunks()):
            for kind in self.kinds if r % 2 == 0 else self.kinds[::-1]:
                self.phase(kind, seqs)
        for kind in self.kinds:
            self.stored[kind] = count_stored(
                self.target(kind), self.fixture.admin, self.stamps, self.plan.timed()
            )


def _add(a: CommitStats, b: CommitStats) -> CommitStats:
    """Two phases' commit figures together (CommitStats only subtracts)."""
    old = dict(a.buckets)
    buckets = tuple((le, n + old.get(le, 0.0)) for le, n in b.buckets)
    return CommitStats(
        a.commits + b.commits, a.readings + b.readings, a.seconds + b.seconds, buckets
    )


def figures(run: Run) -> list[Figure]:
    m, plan, over = run.measured, run.plan, run.scheme
    sync, plain = m["sync"].rate, m["plain"].rate
    posted = sum(x.total.posts for x in m.values())
    acked = sum(x.total.acked for x in m.values())
    stored = sum(run.stored.values())
    committed = round(sum(x.commits.readings for x in m.values()))
    rows = []
    if "async" in m:
        asyn = m["async"].rate
        rows.append(
            Figure(
                f"AsyncClient, {plan.concurrency} concurrent, {over}",
                f"{asyn:,.0f} posts/s",
                f"{sync:,.0f} posts/s (Client, sequential)",
                asyn / sync,
                f"ratio ≥ {ASYNC_TARGET:g}",
                asyn / sync >= ASYNC_TARGET,
            )
        )
    return [
        *rows,
        Figure(
            f"Client, sequential, one Session, {over}"
            + (f" ({plan.posts:,} posts each)" if over == "HTTPS" else ""),
            f"{sync:,.0f} posts/s",
            f"{plain:,.0f} posts/s (requests.post, no Session)",
            sync / plain,
            f"ratio ≥ {SESSION_TARGET:g}",
            sync / plain >= SESSION_TARGET,
        ),
        Figure(
            f"posts acknowledged (accepted == 1), {over}",
            f"{acked:,} of {posted:,}",
            "-",
            None,
            "all",
            acked == posted,
        ),
        Figure(
            f"readings stored (agg=count), {over}",
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
    for kind in run.kinds:
        m = run.measured[kind]
        total = m.total
        label = f"{run.scheme}: " + KINDS[kind].format(concurrency=run.plan.concurrency)
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
    if knobs.ingest_batch_quiet > 0 and run.scheme == "HTTP":
        out.append(
            "a lone post waits for company in its commit until ingest_batch_quiet = "
            f"{1000 * knobs.ingest_batch_quiet:g} ms pass without one (at most "
            f"ingest_batch_max_wait = {1000 * knobs.ingest_batch_max_wait:g} ms): the "
            "sequential clients' latency includes it, whatever the connection costs "
            "(TELEHUB_INGEST_BATCH_QUIET=0 shows the clients alone)"
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


def bench_backend(name: str, plan: Plan, tls_plan: Plan | None) -> Report:
    """The HTTP run, then (with ``tls_plan``) the HTTPS one, on the same database."""
    rep = Report(name)
    backend = make_backend(name)
    try:
        fixture = run_async(setup_hub(backend, len(ORDER) + len(TLS_ORDER)))
        server = Server.telehub(backend)
        try:
            server.wait_ready()
            run = Run(backend, server, fixture, plan)
            console.print(f"[bold]{name}[/], HTTP: warm-up and {plan.rounds} rounds …")
            run.rounds()
        finally:
            server.stop()
        rep.figures += figures(run)
        rep.notes += notes(run)
        if tls_plan is not None:
            tls = make_tls(backend.workdir)
            tls_run = _https(backend, fixture, tls_plan, tls)
            rep.figures += figures(tls_run)
            rep.notes += notes(tls_run)
    finally:
        run_async(drop_backend(backend))
    return rep


def _https(backend: Backend, fixture: Fixture, plan: Plan, tls: Tls) -> Run:
    server = Server.telehub(backend, extra_env=tls.env, ca=tls.ca)
    try:
        server.wait_ready()
        run = Run(backend, server, fixture, plan, TLS_ORDER, len(ORDER), str(tls.ca))
        console.print(
            f"[bold]{backend.name}[/], HTTPS ({handshake(server.base, tls.ca)}): "
            f"warm-up and {plan.rounds} rounds of {plan.posts:,} posts a kind …",
            highlight=False,
        )
        run.rounds()
    finally:
        server.stop()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="2,000 posts a kind (~45 s a backend)")
    parser.add_argument("--posts", type=int, help="posts per client kind (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="AsyncClient posts in flight")
    parser.add_argument("--no-sdk", action="store_true", help="only the simulator's rates")
    parser.add_argument(
        "--tls-posts", type=int, help="posts per client kind over HTTPS (default 2,000)"
    )
    parser.add_argument("--no-tls", action="store_true", help="skip the HTTPS comparison")
    parser.add_argument("--sim", default=",".join(TRANSPORTS), help="transports, or none")
    parser.add_argument("--sim-step", type=float, help="seconds a rate step (default 4)")
    parser.add_argument("--sim-devices", type=int, default=100, help="simulated devices")
    parser.add_argument("--sim-window", type=int, default=64, help="simulator's --window")
    args = parser.parse_args()
    posts = args.posts or (2_000 if args.quick else 10_000)
    tls_posts = args.tls_posts or 2_000
    if posts < 2 or tls_posts < 2 or args.concurrency < 1:
        parser.error("--posts and --tls-posts must be ≥ 2 and --concurrency ≥ 1")
    try:
        sims = parse_transports(args.sim)
    except ValueError as exc:
        parser.error(str(exc))
    if args.sim_devices < 1 or args.sim_window < 1:
        parser.error("--sim-devices and --sim-window must be ≥ 1")
    plan = Plan(posts, rounds=2, warmup=100 if args.quick else 300, concurrency=args.concurrency)
    tls_plan = None if args.no_tls else Plan(tls_posts, 2, warmup=100, concurrency=1)
    step = args.sim_step or (2.0 if args.quick else 4.0)
    sim_plan = SimPlan(sims, step_s=step, devices=args.sim_devices, window=args.sim_window)
    # SIGTERM unwinds like Ctrl-C, through every finally that stops the server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shown = str(sim_plan)
    if not args.no_sdk:
        shown = f"{plan}; HTTPS {tls_plan or 'skipped'}; {shown}"
    header("telehub clients bench", shown, "server knobs")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    tables: list[Shown] = []
    for name in names:
        t0 = time.perf_counter()
        if not args.no_sdk:
            rep = bench_backend(name, plan, tls_plan)
            tables.append(show(rep, "telehub SDK posts", "telehub", time.perf_counter() - t0))
        if sims:
            t0 = time.perf_counter()
            rep = bench_sim(name, sim_plan)
            tables.append(
                show(
                    rep,
                    f"simulator steady rate, {step:g} s steps",
                    "telehub simulate",
                    time.perf_counter() - t0,
                )
            )
    # A run of one part only is named after it: it stands in for no full run.
    part = "-sim" if args.no_sdk else ("-sdk" if not sims else "")
    save_results(
        result_name(f"clients{part}", backend=args.backend, default="sqlite", quick=args.quick),
        title="SDK clients and the simulator",
        command=command("bench-clients"),
        tables=tables,
    )


if __name__ == "__main__":
    main()
