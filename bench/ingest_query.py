"""telehub ingest/query benchmark: each figure next to a baseline measured in the same run.

    .venv/bin/python bench/ingest_query.py [--backend sqlite|postgres|both] [--quick]

(1) REST batch ingest (100 readings a request, one device per client) vs the raw
    driver's batched insert of the same rows, same table, same durability, in commits
    of the size the server's group commit ended up using (from its /metrics);
(2) single-reading POSTs against two baselines, rounds alternating to share the noise:
    the HTTP ceiling, a bare ASGI app on the hub's own uvicorn configuration that
    parses the body with orjson and answers 202, no storage (bench/_bare_app.py); and
    the raw driver committing one row per request with the same durability, at the
    concurrency the database can use (bench/_raw_commits.py);
(3) a 500-bucket avg over 1,000,000 stored readings via GET .../telemetry, after one
    rollup pass (the query reads 10 s rollups where the pass built them, raw readings
    for the rest), and the first 10,000 of those readings (no interval), each against
    the fastest raw SQL form for the same answer, found by timing every candidate in
    the driver (bench/_raw_query.py; the output names the winner).

No target was set against these baselines for (2) and the raw points of (3): their
target column says "none". The machine is shared and noisy: the ratios are what
count. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from _harness import (
    Backend,
    Server,
    drop_backend,
    make_backend,
    run_async,
    scrape,
    setup_hub,
)
from _load import (
    Client,
    LoadResult,
    Row,
    batch_body,
    batch_rows,
    hammer,
    probe_latency,
    quantile,
    single_body,
    time_queries,
)
from _raw import (
    QUERY_BUCKETS,
    QUERY_METRIC,
    WARMUPS,
    QueryRange,
    pg_insert,
    pg_load_query_series,
    query_range,
    rollup_pass,
    sqlite_insert,
    sqlite_load_query_series,
)
from _raw_commits import Commits, RowCommits
from _raw_query import POINTS, Fastest, fastest, pg_candidates, sqlite_candidates
from _report import (
    NO_TARGET,
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

QUERY_TARGET_MS = {"sqlite": 250.0, "postgres": 100.0}


@dataclass(frozen=True)
class Plan:
    clients: int
    rounds: int
    ingest_seconds: float  # per round
    single_seconds: float  # per round, per side
    query_repeat: int


def _interleaved_rows(clients: list[Client], first: list[int]) -> list[Row]:
    """The rows each client sent since ``first[i]``, round-robin: the server's arrival order."""
    sent = [c.done[f:] for c, f in zip(clients, first, strict=True)]
    rows: list[Row] = []
    for i in range(max((len(s) for s in sent), default=0)):
        for c, seqs in zip(clients, sent, strict=True):
            if i < len(seqs):
                rows.extend(batch_rows(c.device_id, seqs[i]))
    return rows


def _raw_insert(backend: Backend, rows: list[Row], commit: int) -> float:
    if backend.is_pg:
        seconds: float = run_async(pg_insert(backend, rows, commit))
        return seconds
    return sqlite_insert(backend, rows, commit)


def _check(result: LoadResult, label: str) -> None:
    if result.errors:
        raise RuntimeError(f"{label}: unexpected responses {dict(result.errors)}")


def bench_batch_ingest(
    backend: Backend, server: Server, admin: str, clients: list[Client], plan: Plan, rep: Report
) -> None:
    warm = run_async(hammer(server.base, clients, batch_body, per_client=2, record=True))
    _check(warm, "batch warm-up")
    _raw_insert(backend, _interleaved_rows(clients, [0] * len(clients)), 1000)  # same start
    hub_rows = hub_s = raw_s = 0.0
    start = scrape(server, admin)
    commits: list[int] = []
    latencies: list[float] = []
    for _ in range(plan.rounds):
        first = [len(c.done) for c in clients]
        before = scrape(server, admin)
        res = run_async(
            hammer(server.base, clients, batch_body, duration=plan.ingest_seconds, record=True)
        )
        _check(res, "batch ingest")
        stats = scrape(server, admin) - before
        rows = _interleaved_rows(clients, first)
        commit = max(1, round(stats.mean_batch))
        commits.append(commit)
        hub_rows += len(rows)
        hub_s += res.seconds
        raw_s += _raw_insert(backend, rows, commit)
        latencies += res.latencies
    stats_all = scrape(server, admin) - start  # the server is idle during raw inserts
    hub_rate, raw_rate = hub_rows / hub_s, hub_rows / raw_s
    driver = "asyncpg COPY" if backend.is_pg else "sqlite3 executemany"
    rep.figures.append(
        Figure(
            f"batch ingest, {len(clients)} clients x 100 readings/request",
            f"{hub_rate:,.0f} readings/s",
            f"{raw_rate:,.0f} rows/s ({driver})",
            hub_rate / raw_rate,
            "ratio ≥ 0.5",
            hub_rate / raw_rate >= 0.5,
        )
    )
    rep.notes += [
        f"batch ingest: {hub_rows:,.0f} readings in {hub_s:.1f} s over {plan.rounds} rounds; "
        f"request latency p50 {1000 * quantile(latencies, 0.5):.1f} ms, "
        f"p95 {1000 * quantile(latencies, 0.95):.1f} ms",
        f"  server commits: {stats_all.commits:.0f}, mean {stats_all.mean_batch:,.0f} "
        f"readings/commit, mean commit {stats_all.mean_commit_ms:.1f} ms "
        f"({stats_all.seconds / hub_s:.0%} of wall time); batch sizes {stats_all.histogram()}",
        f"  raw baseline commit size per round = server's mean batch: {commits} rows/commit",
    ]


def bench_single(
    backend: Backend,
    telehub: Server,
    bare: Server,
    admin: str,
    clients: list[Client],
    plan: Plan,
    rep: Report,
) -> None:
    pool = backend.settings().database_pool_size
    raw = RowCommits(backend, min(len(clients), pool))
    sides: dict[str, list[LoadResult]] = {"bare": [], "hub": []}
    commits: list[Commits] = []
    for srv in (bare, telehub):
        _check(run_async(hammer(srv.base, clients, single_body, per_client=20)), srv.label)
    raw.run(0.2)  # warm-up: the table, its pages, the connections' first statements
    before = scrape(telehub, admin)
    for _ in range(plan.rounds):
        for side, srv in (("bare", bare), ("hub", telehub)):
            res = run_async(hammer(srv.base, clients, single_body, duration=plan.single_seconds))
            _check(res, srv.label)
            sides[side].append(res)
        commits.append(raw.run(plan.single_seconds))  # both servers idle meanwhile
    stats = scrape(telehub, admin) - before

    def rate(side: str) -> float:
        return sum(r.requests for r in sides[side]) / sum(r.seconds for r in sides[side])

    def p50(side: str) -> float:
        return 1000 * quantile([x for r in sides[side] for x in r.latencies], 0.5)

    stall = {srv.label: 1000 * run_async(probe_latency(srv.base)) for srv in (telehub, bare)}
    if max(stall.values()) > 20:
        rep.notes.append(
            "[yellow]warning[/]: one client's back-to-back GET /healthz takes "
            + ", ".join(f"{ms:.0f} ms on {label}" for label, ms in stall.items())
            + ": responses wait for a delayed ACK (Nagle: the accepted sockets lack "
            "TCP_NODELAY), so every HTTP figure here is latency-bound by it"
        )
    hub = rate("hub")
    raw_rate = sum(c.rows for c in commits) / sum(c.seconds for c in commits)
    what = f"single-reading POST, {len(clients)} clients"
    rep.figures += [
        Figure(
            f"{what}, vs the HTTP ceiling",
            f"{hub:,.0f} req/s",
            f"{rate('bare'):,.0f} req/s (bare ASGI + orjson on the hub's uvicorn, no storage)",
            hub / rate("bare"),
            NO_TARGET,
            None,
        ),
        Figure(
            f"{what}, vs per-row commits",
            f"{hub:,.0f} req/s",
            f"{raw_rate:,.0f} rows/s ({raw.describe()})",
            hub / raw_rate,
            NO_TARGET,
            None,
        ),
    ]
    vs_bare = [h.rate / b.rate for h, b in zip(sides["hub"], sides["bare"], strict=True)]
    vs_raw = [h.rate / c.rate for h, c in zip(sides["hub"], commits, strict=True)]
    rep.notes += [
        f"single POST: latency p50 telehub {p50('hub'):.1f} ms vs bare ASGI {p50('bare'):.1f} ms; "
        f"per-round ratios vs bare {', '.join(f'{x:.2f}' for x in vs_bare)}, "
        f"vs per-row commits {', '.join(f'{x:.2f}' for x in vs_raw)}",
        f"  server commits: {stats.commits:.0f}, mean {stats.mean_batch:,.1f} readings/commit, "
        f"mean commit {stats.mean_commit_ms:.1f} ms; batch sizes {stats.histogram()}",
    ]


def _query_params(q: QueryRange, *, buckets: bool) -> dict[str, str]:
    iso = {"from": q.start_us, "to": q.end_us}
    params = {
        "metric": QUERY_METRIC,
        **{k: datetime.fromtimestamp(v / 1e6, UTC).isoformat() for k, v in iso.items()},
    }
    if buckets:
        return params | {"interval": f"{q.width_us // 1_000_000}s", "agg": "avg"}
    return params | {"limit": str(POINTS)}


def bench_query(
    backend: Backend, server: Server, admin: str, device: str, plan: Plan, rep: Report
) -> None:
    q = query_range(device, int(time.time()))
    load: Callable[[], float] = (
        (lambda: run_async(pg_load_query_series(backend, q)))
        if backend.is_pg
        else (lambda: sqlite_load_query_series(backend, q))
    )
    load_s = load()
    # As Celery beat would have by the time anyone queries: the readings are ~2 weeks old.
    rollups = run_async(rollup_pass(backend))
    jobs = {"buckets": (QUERY_BUCKETS, True), "points": (POINTS, False)}
    http = {
        job: run_async(
            time_queries(
                server.base,
                admin,
                device,
                _query_params(q, buckets=buckets),
                repeat=plan.query_repeat,
                buckets=expect,
                warmups=WARMUPS,
            )
        )
        for job, (expect, buckets) in jobs.items()
    }
    raw = run_async(_fastest_raw(backend, q, plan.query_repeat))
    target = QUERY_TARGET_MS[backend.name]
    what = {
        "buckets": f"range query: 1M readings → {QUERY_BUCKETS} x avg, rollups",
        "points": f"range query: {POINTS:,} raw points of 1M readings",
    }
    for job in jobs:
        best = raw[job].best
        for label, quant in (("p50", 0.5), ("p95", 0.95)):
            ms, raw_ms = 1000 * quantile(http[job], quant), best.ms(quant)
            head = label == "p50" and job == "buckets"
            rep.figures.append(
                Figure(
                    f"{what[job]}, {label}",
                    f"{ms:,.1f} ms",
                    f"{raw_ms:,.1f} ms ({best.label})",
                    raw_ms / ms,
                    f"p50 ≤ {target:.0f} ms" if head else (NO_TARGET if label == "p50" else "-"),
                    ms <= target if head else None,
                )
            )
    rep.notes += [
        f"query: {plan.query_repeat} sequential GETs of each kind after {WARMUPS} warm-ups, on a "
        f"restarted server; 1M readings loaded directly in {load_s:.1f} s, then one rollup "
        f"pass (as beat would run it): {rollups.seconds:.1f} s, {rollups.buckets:,} buckets in "
        f"{rollups.transactions} transactions; it covers all 1M readings (older than now - "
        "lag), so the bucket GET reads ~100,000 10 s rollup rows, not readings",
        "  raw SQL candidates, p50 of their screening runs (xN; the fastest then ran "
        f"{plan.query_repeat} times after {WARMUPS} warm-ups): buckets: "
        f"{raw['buckets'].describe()}",
        f"  points: {raw['points'].describe()}",
    ]


async def _fastest_raw(backend: Backend, q: QueryRange, repeat: int) -> dict[str, Fastest]:
    candidates = pg_candidates if backend.is_pg else sqlite_candidates
    async with candidates(backend, q) as (buckets, points):
        return {
            "buckets": await fastest(buckets, QUERY_BUCKETS, repeat),
            "points": await fastest(points, POINTS, repeat),
        }


def bench_backend(name: str, plan: Plan) -> Report:
    rep = Report(name)
    backend = make_backend(name)
    servers: list[Server] = []
    try:
        fixture = run_async(setup_hub(backend, plan.clients))
        clients = [Client(dev, tok) for dev, tok in fixture.devices]
        servers.append(Server.telehub(backend))
        servers.append(Server.bare(backend))
        for srv in servers:
            srv.wait_ready()
        telehub, bare = servers
        console.print(f"[bold]{name}[/]: batch ingest …")
        bench_batch_ingest(backend, telehub, fixture.admin, clients, plan, rep)
        console.print(f"[bold]{name}[/]: single-reading POSTs …")
        bench_single(backend, telehub, bare, fixture.admin, clients, plan, rep)
        console.print(f"[bold]{name}[/]: range query …")
        # A fresh server: its pool then serves sequential GETs from one connection, on which
        # the statement soon runs as often as it does on every connection of a busy server.
        telehub.stop()
        servers.append(Server.telehub(backend))
        servers[-1].wait_ready()
        bench_query(backend, servers[-1], fixture.admin, fixture.query_device, plan, rep)
    finally:
        for srv in servers:
            srv.stop()
        run_async(drop_backend(backend))
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="shorter rounds (~1.5 min)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    args = parser.parse_args()
    plan = (
        Plan(args.clients, rounds=2, ingest_seconds=2.0, single_seconds=1.5, query_repeat=15)
        if args.quick
        else Plan(args.clients, rounds=3, ingest_seconds=3.5, single_seconds=3.0, query_repeat=30)
    )
    header("telehub bench", plan, "server knobs")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    tables: list[Shown] = []
    for name in names:
        t0 = time.perf_counter()
        rep = bench_backend(name, plan)
        tables.append(show(rep, "telehub benchmark", "telehub", time.perf_counter() - t0))
    save_results(
        result_name("ingest", backend=args.backend, default="both", quick=args.quick),
        title="Ingest and query",
        command=command("bench"),
        tables=tables,
    )


if __name__ == "__main__":
    main()
