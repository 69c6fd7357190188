"""telehub live fan-out benchmark: WebSocket and SSE delivery next to bare servers, same run.

    .venv/bin/python bench/fanout.py [--quick] [--only idle,ws,sse]    (make bench-fanout)

One ``telehub api`` on SQLite (temp dir, free port); every client and the load
generator run in their own processes (spawned workers driven over pipes), never
in a server's. Times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for
all processes of the machine).

(1) Latency: 100 WebSocket clients (4 processes x 25) subscribe to every device
    (``{"op":"subscribe","devices":["*"]}``); a loader process posts 2,000
    readings/s for 10 s: 200 POSTs/s round-robin over 100 devices, 10 readings a
    POST, all of one POST with the POST's number as value. The loader notes when
    each 202 was read; a client notes when each frame's last byte arrived and
    which POST numbers (how many readings of each) it held. Latency of a delivery
    = receive time - the 202 time of its POST: commit → client, measured from the
    moment the sender is told it is stored (telehub publishes right after
    resolving the commit, so a frame can beat the 202: that shows as < 0). p50 /
    p99 over every reading x client; every client must get every accepted
    reading, and no ``gap``. Target p99 ≤ 50 ms (frames are coalesced per 25 ms).
(2) Rate: the same clients, then higher rates, still 200 POSTs/s with more
    readings a POST (5k … 160k readings/s, 5 s each) until a step fails: a client
    short of a reading after the load (2 s quiet), a gap, p99 latency > 1 s, or
    a loader more than 1 s behind its schedule. deliveries/s = readings received
    by all clients / (first POST sent → last reading received). Baseline: the same
    clients on ``_fanout_bare_ws.py`` (websockets' own server + ``broadcast``) fed
    the same readings/s in the same batches (one device, PER_POST metrics, as a
    POST's commit), coalescing as telehub does: the batches made in each tick of
    telehub's frame interval (25 ms, one clock for every connection) go out as one
    frame of telehub's JSON shape, encoded once for all clients; each reading's
    value is its batch's due time, so latency = receive - due. Same pass rules. In
    this phase clients pause reading 5 ms after each read (``_fanout_wire``), for
    both. Target: telehub ≥ 0.7 x baseline: the same design without a bus,
    storage or filters, so the ratio is what telehub's own machinery costs.
(3) Memory per idle connection (run first, on servers of its own): a fresh
    server, 50 connections opened and closed (warm-up), VmRSS from /proc; then
    5,000 ``websockets`` clients (10 processes x 500) connect and subscribe,
    nothing flows, VmRSS again; the difference / 5,000. Clients offer
    permessage-deflate as browsers do. telehub (compression off, the default) vs
    the bare websockets server (compression off); for information, a bare
    FastAPI WebSocket route on telehub's own uvicorn configuration
    (``_fanout_bare_asgi.py``: the framework's floor), and both with compression.
    Target ≤ 20 KiB.
(4) SSE (``_fanout_sse.py``): streaming compared at the same offered load, not
    event making. First C = events/s telehub makes with no SSE client (bulk
    commands of 1,000 devices back to back, 2 in flight; the median of 3
    samples of 4). Then telehub and a bare Starlette StreamingResponse
    server (``_fanout_bare_sse.py``: events as big as telehub's, made for
    free) are fed alike, a 1,000-device bulk
    POST (1,000 ``commands`` events) every 1000 / R s, R = C / 2, for 8 s
    (--quick: 4 s), with 50, 100, 200, 400 SSE clients (--quick: 50, 200,
    400; raw sockets, 25 a process, counting events in the bytes). Per step
    and server: deliveries/s = events received by all clients / (first POST
    → last event received), whether every client got every event, and p99 of
    receive - its POST's 202. A step keeps up if every client got every event
    and the last arrived within 1 s of the last 202. Target: telehub ≥ 0.7 x
    bare at the largest step the bare server keeps up at (named in the
    table; here it keeps up at every step, on a tenth of a core at 400, so
    the bound is the client processes, not the baseline). While both keep
    up both deliver ~R x clients and the ratio is ~1 ("keeps up as well"); it
    falls where telehub falls behind first, or makes events slower than R
    because streaming takes its CPU (its 202s come late: shown). C and R are
    printed, so making and streaming can be told apart.

The machine may be shared: each step prints the CPU of every process group, as
% of one core, plus interrupts and "other" (everything else on the machine).
Nothing here asserts; a phase that fails is reported and the rest still run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Callable

from _fanout_idle import idle_memory
from _fanout_live import bare_live, live_figures, telehub_live
from _fanout_load import load_worker
from _fanout_plan import FULL, QUICK, Run
from _fanout_proc import Pool
from _fanout_sse import sse
from _fanout_stats import raise_nofile
from _harness import Server, drop_backend, make_backend, run_async, setup_hub
from _report import Report, command, console, header, result_name, save_results, show

PHASES = ("idle", "ws", "sse")
READY_S = 60.0  # a shared, busy machine can be slow to start a server


def bench(run: Run, phases: set[str]) -> None:
    """Memory first, on servers of its own; then one telehub for the live phases."""
    if "idle" in phases:
        _phase(run, "idle", lambda: idle_memory(run))
    if phases & {"ws", "sse"}:
        server = run.own(Server.telehub(run.backend))
        server.wait_ready(READY_S)
        loader = run.own(Pool("loader", load_worker, 1))
        if "ws" in phases:
            _phase(run, "ws", lambda: live(run, server, loader))
        if "sse" in phases:
            _phase(run, "sse", lambda: sse(run, server, loader))
    load = os.getloadavg()
    run.note(f"load average at the end: {load[0]:.2f} ({os.cpu_count()} cpus)")


def live(run: Run, server: Server, loader: Pool) -> None:
    latency, hub_steps = telehub_live(run, server, loader)
    bare_steps = bare_live(run)
    live_figures(run, latency, hub_steps, bare_steps, run.plan)


def _phase(run: Run, name: str, body: Callable[[], None]) -> None:
    """A phase that fails is reported and the others still run (Ctrl-C stops everything)."""
    try:
        body()
    except Exception as exc:
        console.print_exception(max_frames=4)
        run.note(f"[red]phase {name} failed[/]: {exc!r}"[:600])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter steps, 2,000 idle clients")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases: {','.join(PHASES)}"
    )
    args = parser.parse_args()
    phases = set(args.only.split(","))
    if not phases <= set(PHASES):
        parser.error(f"--only takes {', '.join(PHASES)}")
    plan = QUICK if args.quick else FULL
    # SIGTERM unwinds like Ctrl-C, through every finally that stops a child process (and
    # Ctrl-C does, even when started from a shell that had it ignored).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise_nofile()  # the servers inherit it
    header("telehub fanout bench", plan, "server knobs")
    t0 = time.perf_counter()
    report = Report("sqlite")
    backend = make_backend("sqlite")
    interrupted = False
    try:
        with contextlib.ExitStack() as stack:
            fixture = run_async(setup_hub(backend, plan.sse_devices))
            bench(Run(plan, backend, fixture, report, stack), phases)
    except KeyboardInterrupt:
        interrupted = True
        report.notes.append("[red]interrupted[/]: the figures above are what was measured")
    finally:
        run_async(drop_backend(backend))
    table = show(report, "telehub live fan-out", "telehub", time.perf_counter() - t0)
    if interrupted:
        raise SystemExit(130)
    # A run of some phases only is named after them: it stands in for no full run.
    only = "".join(f"-{p}" for p in PHASES if p in phases) if phases != set(PHASES) else ""
    save_results(
        result_name(f"fanout{only}", quick=args.quick),
        title="Live fan-out: WebSocket and SSE",
        command=command("bench-fanout"),
        tables=[table],
    )


if __name__ == "__main__":
    main()
