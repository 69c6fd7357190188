"""telehub gRPC ingest benchmark: client streaming next to unary calls, REST batches and
the raw driver, all measured in the same run.

    .venv/bin/python bench/grpc_ingest.py [--backend sqlite|postgres|both] [--quick]
        [--clients 8]

For batches of 100 and of 1,000 readings (10 metrics x 10 or 100 timestamps, every
reading new, so every one must come back as accepted):

(1) readings/s committed through ``IngestService.Publish``, one client stream; its
    clock stops when the summary arrives, i.e. after the last commit (HTTP/2 flow
    control lets the client run megabytes ahead of the server's reads: the stream's
    end is the server draining them);
(2) through ``IngestService.PublishBatch``, one call in flight per client;
(3) through REST batches, ``POST /api/v1/devices/{id}/telemetry`` with a JSON list of
    ``{"ts", "values"}`` messages, one request in flight per client;
(4) the raw driver inserting the rows the stream sent into a copy of the readings table
    with the same durability (bench/_raw.py, the baseline of bench/ingest_query.py), in
    commits of the size the server's group commit used for the stream (its /metrics).

(2) runs with 1 client, like the stream (one edge gateway each), and with ``--clients``
concurrent clients; (3) with 1, ``--clients`` / 2, ``--clients``, 2 x and 4 x
``--clients`` clients. Every client is a device writing with its own device token. The ratio
stream / REST batch compares one stream with REST at its best client count in the same
run (the highest rate of those, per batch size): the fastest way to send the same
readings over REST, not one sequential client (when the best is the most clients tried,
a note says REST might do better still).

The servers are ``telehub api`` (REST) and ``telehub grpc --metrics-port`` (its
/metrics give the commit figures), on the same database; only one is loaded at a
time. Within a round the phases alternate, to share the noise. Clients run in this
process on messages built before each phase; where the CPU went is printed.
TELEHUB_INGEST_* and TELEHUB_GRPC_* (e.g. TELEHUB_GRPC_STREAM_WINDOW_READINGS) pass
through to the servers. The machine is shared and noisy: the ratios are what count.
Nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from _grpc_feed import SIZES, Feed
from _grpc_load import STREAMS, Phase, Result, Usage, build_pools, run_phase
from _grpc_report import Totals, figures, notes
from _harness import (
    BENCH_DIR,
    Backend,
    CommitStats,
    Server,
    drop_backend,
    free_port,
    make_backend,
    run_async,
    scrape,
    setup_hub,
)
from _raw import pg_insert, sqlite_insert
from _report import Report, Shown, command, console, header, result_name, save_results, show

WARM_S = 0.3  # per warm-up phase
PRIOR_RATE = 150_000.0  # readings/s assumed before a phase was warmed up
HEADROOM = 1.5  # pools hold this many times what the phase should need, plus for a stream:
RUN_AHEAD_BYTES = 8 << 20  # what HTTP/2 flow control lets it send ahead of the server's reads


@dataclass(frozen=True)
class Plan:
    clients: int  # of the "several clients" phases
    rounds: int
    seconds: float  # per phase and round

    @property
    def rest_clients(self) -> list[int]:
        """REST's client counts: its best one is the stream's baseline."""
        c = self.clients
        return sorted({1, max(1, c // 2), c, 2 * c, 4 * c})

    @property
    def devices(self) -> int:
        return max(self.rest_clients)

    def phases(self, size: int) -> list[Phase]:
        kinds = [("series", 1), ("stream", 1), ("unary", 1)]
        if self.clients > 1:
            kinds.append(("unary", self.clients))
        kinds += [("rest", n) for n in self.rest_clients]
        return [Phase(t, n, size) for t, n in kinds]


def grpc_knobs() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("TELEHUB_GRPC_")}


def grpc_server(backend: Backend) -> tuple[Server, str]:
    """``telehub grpc`` on a free port; the Server's own port serves its /metrics."""
    port = free_port()
    env = {**backend.env(), **grpc_knobs(), "TELEHUB_GRPC_PORT": str(port)}
    argv = [sys.executable, str(BENCH_DIR / "_grpc_server.py")]
    return Server(f"grpc-{backend.name}", argv, env, backend.workdir), f"127.0.0.1:{port}"


@dataclass
class Run:
    """One backend's servers and fixture, and what every phase measured."""

    backend: Backend
    http: Server
    grpc: Server
    grpc_target: str
    admin: str
    devices: list[tuple[str, str]]
    plan: Plan
    feeds: dict[int, Feed] = field(default_factory=lambda: {s: Feed(s) for s in SIZES})
    rates: dict[Phase, float] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)

    async def measure(self, phase: Phase, seconds: float) -> tuple[Result, CommitStats]:
        """One phase on pre-built pools sized from the rate seen so far."""
        server = self.grpc if phase.transport != "rest" else self.http
        feed = self.feeds[phase.size]
        expected = self.rates.get(phase, PRIOR_RATE) * seconds * HEADROOM / phase.size
        if phase.transport in STREAMS:
            expected += RUN_AHEAD_BYTES / feed.wire_bytes
        per_client = max(4, math.ceil(expected / phase.clients))
        pools = build_pools(phase, feed, self.devices, per_client)
        pg = self.backend.is_pg
        before = scrape(server, self.admin)
        result = await run_phase(
            phase,
            pools,
            seconds,
            grpc_target=self.grpc_target,
            http_base=self.http.base,
            usage=lambda: Usage.snap(server.proc.pid, postgres=pg),
        )
        stats = scrape(server, self.admin) - before
        self.rates[phase] = max(self.rates.get(phase, 0.0), result.rate)
        self.totals.check(result)
        return result, stats

    async def raw(self, result: Result, commit: int) -> tuple[int, float]:
        """The raw driver inserting the rows ``result`` sent: (rows, seconds)."""
        feed = self.feeds[result.phase.size]
        rows = [row for dev, seqs in result.sent_seqs() for row in feed.rows(dev, seqs)]
        if self.backend.is_pg:
            seconds: float = await pg_insert(self.backend, rows, commit)
        else:
            seconds = sqlite_insert(self.backend, rows, commit)
        return len(rows), seconds


async def bench_rounds(run: Run) -> None:
    plan = run.plan
    for size in SIZES:  # warm-up: connections, caches, device and token lookups
        for phase in plan.phases(size):
            result, stats = await run.measure(phase, WARM_S)
            if phase.transport == "series":
                await run.raw(result, max(1, round(stats.mean_batch)))  # same start as the hub
    for _ in range(plan.rounds):
        for size in SIZES:
            for phase in plan.phases(size):
                result, stats = await run.measure(phase, plan.seconds)
                run.totals.add(result, stats)
                if phase.transport == "series":  # the raw driver inserts the same rows
                    commit = max(1, round(stats.mean_batch))
                    rows, seconds = await run.raw(result, commit)
                    run.totals.add_raw(size, rows, seconds, commit)


async def _run_backend(backend: Backend, plan: Plan, rep: Report) -> None:
    fixture = await setup_hub(backend, plan.devices)
    with contextlib.ExitStack() as stack:
        http = Server.telehub(backend)
        stack.callback(http.stop)
        grpc, target = grpc_server(backend)
        stack.callback(grpc.stop)
        http.wait_ready()
        grpc.wait_ready()
        run = Run(backend, http, grpc, target, fixture.admin, fixture.devices, plan)
        console.print(f"[bold]{backend.name}[/]: warm-up and {plan.rounds} rounds …")
        await bench_rounds(run)
    rep.figures += figures(run.totals, postgres=backend.is_pg)
    rep.notes += notes(run.totals, plan.clients, plan.rest_clients, postgres=backend.is_pg)
    rep.notes += _complaints(http, grpc)


def _complaints(*servers: Server) -> list[str]:
    out = []
    for srv in servers:
        bad = [
            ln
            for ln in srv.log_path.read_text(errors="replace").splitlines()
            if ln.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback"))
        ]
        if bad:
            out.append(f"[yellow]{srv.label} logged {len(bad)} warnings/errors[/], first: {bad[0]}")
    return out


def bench_backend(name: str, plan: Plan) -> Report:
    rep = Report(name)
    backend = make_backend(name)
    try:
        run_async(_run_backend(backend, plan, rep))
    finally:
        run_async(drop_backend(backend))
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="one short round (~30 s a backend)")
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="concurrent clients of the unary row; REST runs 1, /2, x1, x2 and x4 of it",
    )
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be ≥ 1")
    plan = (
        Plan(args.clients, rounds=1, seconds=1.5)
        if args.quick
        else Plan(args.clients, rounds=2, seconds=2.5)
    )
    # SIGTERM unwinds like Ctrl-C, through every finally that stops a server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    header("telehub grpc bench", plan, "server knobs")
    if knobs := grpc_knobs():
        console.print(f"gRPC server knobs: {knobs}", highlight=False)
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    tables: list[Shown] = []
    for name in names:
        t0 = time.perf_counter()
        rep = bench_backend(name, plan)
        tables.append(show(rep, "telehub gRPC ingest", "telehub", time.perf_counter() - t0))
    save_results(
        result_name("grpc", backend=args.backend, default="both", quick=args.quick),
        title="gRPC ingest",
        command=command("bench-grpc"),
        tables=tables,
    )


if __name__ == "__main__":
    main()
