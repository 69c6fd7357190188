"""Phase (3): resident memory per idle, subscribed WebSocket connection."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from _fanout_clients import idle_worker
from _fanout_live import split
from _fanout_plan import BENCH_DIR, BareWs, Run, metric
from _fanout_proc import Pool
from _fanout_stats import rss_kib
from _harness import TELEHUB, Server
from _report import Figure, console

TARGET_KIB = 20.0
READY_S = 60.0
WARMUP = 50
PARALLEL = 50  # connection attempts in flight per client process


@dataclass(frozen=True)
class Memory:
    label: str
    before_kib: int
    after_kib: int
    connections: int

    @property
    def per_connection(self) -> float:
        return (self.after_kib - self.before_kib) / self.connections

    def describe(self) -> str:
        return (
            f"{self.label}: VmRSS {self.before_kib / 1024:.1f} MiB → {self.after_kib / 1024:.1f} "
            f"MiB with {self.connections:,} = {self.per_connection:.1f} KiB each"
        )


def _steady_rss(pid: int) -> int:
    """VmRSS once it stops moving (a median of three, 0.3 s apart)."""
    samples = []
    for _ in range(3):
        time.sleep(0.3)
        samples.append(rss_kib(pid))
    return int(statistics.median(samples))


def _measure(label: str, pid: int, url: str, pool: Pool, n: int, held: Callable[[], int]) -> Memory:
    """Warm-up connect/close, RSS, ``n`` connections from ``pool``, RSS again."""
    console.print(f"idle connections: {label} …")
    pool.call_each([("connect", url, WARMUP if k == 0 else 0, PARALLEL) for k in range(len(pool))])
    pool.call("close")
    time.sleep(1.0)
    before = _steady_rss(pid)
    got = sum(pool.call_each([("connect", url, k, PARALLEL) for k in split(n, len(pool))]))
    if got != n or held() != n:
        raise RuntimeError(f"{label}: {got} clients connected, the server holds {held()}")
    time.sleep(1.0)
    after = _steady_rss(pid)
    pool.call("close")
    memory = Memory(label, before, after, n)
    console.print(f"  {memory.describe()}", highlight=False)
    return memory


def _telehub(run: Run, pool: Pool, *, compression: bool) -> Memory:
    env = {**run.backend.env(), "TELEHUB_WS_COMPRESSION": "true" if compression else "false"}
    label = f"telehub-{'deflate' if compression else 'plain'}"
    server = Server(label, [str(TELEHUB), "api"], env, run.workdir)
    try:
        server.wait_ready(READY_S)
        url = f"ws://127.0.0.1:{server.port}/api/v1/ws?token={run.fixture.admin}"
        return _measure(
            f"telehub, compression {'on' if compression else 'off'}",
            server.proc.pid,
            url,
            pool,
            run.plan.idle,
            lambda: int(metric(server, run.fixture.admin, "telehub_ws_connections")),
        )
    finally:
        server.stop()


def _floor(run: Run, pool: Pool) -> Memory:
    """A bare FastAPI WebSocket route on telehub's uvicorn configuration."""
    argv = [sys.executable, str(BENCH_DIR / "_fanout_bare_asgi.py")]
    server = Server("fastapi-floor", argv, run.backend.env(), run.workdir)
    try:
        server.wait_ready(READY_S)
        url = f"ws://127.0.0.1:{server.port}/api/v1/ws"
        n = run.plan.idle
        return _measure(
            "bare FastAPI route, telehub's uvicorn config", server.proc.pid, url, pool, n, lambda: n
        )
    finally:
        server.stop()


def _bare(run: Run, pool: Pool, *, compression: bool) -> Memory:
    bare = BareWs(run.workdir, compression=compression)
    try:
        return _measure(
            f"bare websockets, compression {'on' if compression else 'off'}",
            bare.proc.pid,
            bare.url,
            pool,
            run.plan.idle,
            lambda: int(bare.command("clients")[1]),
        )
    finally:
        bare.stop()


def idle_memory(run: Run) -> None:
    plan = run.plan
    pool = run.own(Pool("idle", idle_worker, plan.idle_procs))
    hub = _telehub(run, pool, compression=False)
    bare = _bare(run, pool, compression=False)
    floor = _floor(run, pool)
    hub_z = _telehub(run, pool, compression=True)
    bare_z = _bare(run, pool, compression=True) if plan.deflate_baseline else None
    run.report.figures.append(
        Figure(
            f"memory per idle WS connection ({plan.idle:,} subscribed, compression off)",
            f"{hub.per_connection:.1f} KiB",
            f"{bare.per_connection:.1f} KiB (bare websockets)",
            hub.per_connection / bare.per_connection,
            f"≤ {TARGET_KIB:.0f} KiB",
            hub.per_connection <= TARGET_KIB,
        )
    )
    run.report.figures.append(
        Figure(
            "… with permessage-deflate (information)",
            f"{hub_z.per_connection:.1f} KiB",
            f"{bare_z.per_connection:.1f} KiB (bare websockets)" if bare_z else "not measured",
            hub_z.per_connection / bare_z.per_connection if bare_z else None,
            "—",
            None,
        )
    )
    for memory in (hub, bare, floor, hub_z, bare_z):
        if memory is not None:
            run.note(memory.describe())
    run.note(
        f"  for comparison: a plain FastAPI WebSocket route on telehub's uvicorn configuration "
        f"costs {floor.per_connection:.1f} KiB; telehub serves /api/v1/ws ahead of FastAPI"
    )
