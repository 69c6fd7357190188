"""Phase (4): SSE streaming at the same paced feed, telehub vs a bare Starlette stream.

Making an event costs telehub a device lookup and a commit of the command and
its event-log row; the bare server (``_fanout_bare_sse.py``) makes its events
for free. Fed as fast as a loader can, the two would compare event making,
not streaming. So:

1. C: how fast telehub makes events with no SSE client, bulk commands of
   ``plan.sse_devices`` devices sent back to back, 2 in flight (events answered
   / first POST → last 202; the median of 3 samples of 4 POSTs: one swings by
   ±30 % from run to run on a shared machine).
2. R = C / 2: both servers get the same offered load, a bulk POST of D devices
   every D / R s for ``plan.sse_seconds`` s (the loader's ``paced``). Each makes
   D ``commands`` events a POST: telehub by committing them, the bare server by
   formatting copies of a real telehub event (same size). Half of C leaves
   telehub room to stream as well as make, in the same process.
3. Steps of ``plan.sse_steps`` clients (raw-socket clients, up to 25 a
   process, connected afresh for each step and server; telehub and the bare
   server take turns going first). A client counts ``event: commands`` lines in
   the raw bytes and notes when each read arrived; nothing is parsed.
   deliveries/s = events received by all clients / (first POST → last event
   received). Latency of an event = its receive time - the 202 time of its
   POST (the k-th D events a client gets belong to the k-th POST answered: a
   bulk command's events are committed together, in answer order). A step
   *keeps up* if every client got every event and the last one arrived within
   1 s of the last 202.

The figure held against the target (telehub ≥ 0.7 x bare) is the ratio at the
largest step the bare server keeps up at (beyond it the machine, not the
server, sets the pace); when it keeps up at every step, as it does here (at
400 clients on a tenth of a core, and at 800 on a fifth), that is the largest
step run. The bound is then the client processes sharing 2 cpus with the
servers: a spawned one costs ~2 s of CPU and 90 MB to start, 16 at 400
clients; 32, for 800, overran the pool's 60 s start on a busy machine.

Limits. At a fixed offered rate a server that keeps up delivers about R x
clients, so the ratio sits near 1 and says "keeps up too", not "streams as
fast"; it drops only where telehub falls behind first. telehub makes events
and streams them in one process: as clients grow, streaming takes CPU from
making, its 202s come late (the table says by how much) and the run lasts
longer, which lowers its deliveries/s even if every event arrives; "keeps up"
(judged from the last 202) does not see that, the ratio does. Counting marks
in raw bytes relies on both servers writing whole events (a chunked-encoding
boundary never splits one) and on a bulk command's events being committed
together. Clients, loader and both servers share 2 cpus, and so does anyone
else on the machine: each run prints the CPU of each and the machine's
"other"; figures from a busy machine swing by tens of percent.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing.connection
import re
import sys
import time
import urllib.request
from array import array
from typing import Any, cast

from _fanout_live import split
from _fanout_plan import BENCH_DIR, Run, SseRun
from _fanout_proc import Command, Pool, serve_commands
from _fanout_stats import CpuMeter, Histogram
from _harness import Server
from _report import Figure, console

TARGET = 0.7
SHARE = 0.5  # R = SHARE x C
PER_PROC = 25  # clients a process
PARALLEL, ALONE_POSTS = 2, 4  # measuring C: 3 times 4 POSTs, 2 in flight
QUIET_S, CAP_S = 3.0, 60.0  # waiting for the last events of a run
MARK = b"\nevent: commands\n"  # one a commands event: other types (presence) are not counted
_KEEP = len(MARK) - 1


class _Stream(asyncio.Protocol):
    """One GET of text/event-stream over a raw socket: counts events, notes read times."""

    def __init__(self, request: bytes, opened: asyncio.Future[None]) -> None:
        self.request, self.opened = request, opened
        self.transport: asyncio.BaseTransport | None = None
        self.head: bytes | None = b""  # the response head until complete, then None
        self.tail = b""  # the last bytes read: a mark split between two reads
        self.events = 0
        self.times = array("d")  # when a read brought events …
        self.totals = array("q")  # … and the events counted by then
        self.error = ""
        self.closing = False

    def itself(self) -> _Stream:  # the protocol factory of its connection
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's is an asyncio.Transport, not a subclass of it
        cast(asyncio.Transport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.head is not None:
            head = self.head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.head = head
                return
            status = head.split(b"\r\n", 1)[0]
            self.head, data = None, head[end + 4 :]
            if b" 200 " not in status:
                self._fail(f"answered {status.decode(errors='replace')}")
                return
        if not self.opened.done() and b"retry:" in self.tail + data:  # subscribed
            self.opened.set_result(None)
        found = data.count(MARK) + (self.tail + data[:_KEEP]).count(MARK)
        self.tail = data[-_KEEP:] if len(data) >= _KEEP else (self.tail + data)[-_KEEP:]
        if found:
            self.events += found
            self.times.append(now)
            self.totals.append(self.events)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self._fail(f"closed by the server ({exc!r})")

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(why))
        self.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class SseClients:
    """A client process's streams: ``connect``, ``collect`` (counts, latencies), ``close``."""

    def __init__(self) -> None:
        self._streams: list[_Stream] = []

    async def __call__(self, command: Command) -> Any:
        match command:
            case ("connect", str(host), int(port), str(target), int(n)):
                request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                request += "Accept: text/event-stream\r\n\r\n"
                loop = asyncio.get_running_loop()
                fresh = [_Stream(request.encode(), loop.create_future()) for _ in range(n)]
                for stream in fresh:
                    await loop.create_connection(stream.itself, host, port)
                    self._streams.append(stream)
                async with asyncio.timeout(30):
                    await asyncio.gather(*(s.opened for s in fresh))
                return len(self._streams)
            case ("collect", int(expected), float(quiet), float(cap), bytes(answers), int(per)):
                await self._settle(expected, quiet, cap)
                return self._stats(answers, per)
            case ("close",) | ("exit",):
                for stream in self._streams:
                    stream.close()
                self._streams.clear()
                return None
        raise ValueError(f"unknown command {command!r}")

    async def _settle(self, expected: int, quiet: float, cap: float) -> None:
        """Until every stream has ``expected``, or nothing moved for ``quiet`` s, or ``cap`` s."""
        deadline = time.monotonic() + cap
        seen, moved = -1, time.monotonic()
        while min((s.events for s in self._streams), default=expected) < expected:
            now, total = time.monotonic(), sum(s.events for s in self._streams)
            if total != seen:
                seen, moved = total, now
            elif now - moved > quiet or now > deadline:
                return
            await asyncio.sleep(0.02)

    def _stats(self, answers: bytes, per: int) -> dict[str, Any]:
        """Counts, and latencies: the k-th event of a stream came from the k // per-th 202."""
        answered = array("d")
        answered.frombytes(answers)
        hist, unmatched = Histogram(), 0
        for stream in self._streams:
            before = 0
            for now, total in zip(stream.times, stream.totals, strict=True):
                while before < total:
                    post = before // per
                    upto = min(total, (post + 1) * per)
                    if post < len(answered):
                        hist.add(now - answered[post], upto - before)
                    else:
                        unmatched += upto - before
                    before = upto
        return {
            "counts": [s.events for s in self._streams],
            "last": max((s.times[-1] for s in self._streams if s.times), default=0.0),
            "hist": dict(hist),
            "unmatched": unmatched,
            "errors": [s.error for s in self._streams if s.error],
        }


def sse_client_worker(conn: multiprocessing.connection.Connection) -> None:
    serve_commands(conn, SseClients)


class _Phase:
    """The loader, the client processes, and the paced feed they share."""

    def __init__(self, run: Run, loader: Pool, ids: list[str], rate: float) -> None:
        self.run, self.loader, self.ids, self.rate = run, loader, ids, rate
        procs = math.ceil(max(run.plan.sse_steps) / PER_PROC)
        self.clients = run.own(Pool("sse", sse_client_worker, procs))

    def measure(self, label: str, server: Server, target: str, n: int, seconds: float) -> SseRun:
        active = math.ceil(n / PER_PROC)
        share = split(n, active) + [0] * (len(self.clients) - active)
        self.clients.call_each([("connect", "127.0.0.1", server.port, target, k) for k in share])
        pids = {"server": [server.proc.pid], "clients": self.clients.pids}
        meter = CpuMeter({**pids, "loader": self.loader.pids})
        admin = self.run.fixture.admin
        [load] = self.loader.call("paced", server.base, admin, self.ids, self.rate, seconds)
        stats = self.clients.call(
            "collect", load["events"], QUIET_S, CAP_S, load["answers"], len(self.ids)
        )
        cpu = meter.stop().describe()
        self.clients.call("close")
        hist = Histogram()
        for s in stats:
            hist.update(s["hist"])
        errors = [f"{load['error_count']} POSTs failed, e.g. {e}" for e in load["errors"][:1]]
        if errors:
            errors.append(f"server log: {_logged_error(server)}")
        errors += [f"{len(e)} streams failed, e.g. {e[0]}" for s in stats if (e := s["errors"])]
        errors += [f"{u:,} events matched no 202" for s in stats if (u := s["unmatched"])]
        return SseRun(
            label,
            n,
            load["events"],
            [c for s in stats for c in s["counts"]][:n],
            hist,
            load["start"],
            load["last_answer"],
            max(s["last"] for s in stats),
            load["slip"],
            cpu,
            errors,
        )


def _logged_error(server: Server) -> str:
    """The last exception line of a server's log (why it answered 500)."""
    text = server.log_path.read_text(errors="replace")
    found = re.findall(r"^[\w.]*(?:Error|Exception)\w*: .*$", text, re.M)
    return found[-1][:300] if found else "no exception logged"


def _event_data(server: Server, admin: str) -> bytes:
    """The data line of the oldest logged event (a command event made by the warm-up)."""
    url = f"{server.base}/api/v1/events?after=0&token={admin}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        for line in resp:
            if line.startswith(b"data: "):
                return bytes(line[6:]).rstrip(b"\n")
    raise RuntimeError("no event in telehub's log")


def _making_rate(run: Run, server: Server, loader: Pool, ids: list[str]) -> float:
    """C: events/s telehub makes with no SSE client, bulk POSTs back to back (median of 3)."""
    admin = run.fixture.admin
    loader.call("bulk", server.base, admin, ids, 1, 1)  # warm-up
    meter = CpuMeter({"server": [server.proc.pid], "loader": loader.pids})
    rates = []
    for _ in range(3):
        [alone] = loader.call("bulk", server.base, admin, ids, ALONE_POSTS, PARALLEL)
        if alone["error_count"]:
            raise RuntimeError(f"bulk commands failed: {alone['errors']}")
        rates.append(alone["events"] / (alone["last_answer"] - alone["start"]))
    rates.sort()
    run.note(
        f"SSE: C = {rates[1]:,.0f} events/s made by telehub with no SSE client, the median "
        f"of {', '.join(f'{r:,.0f}' for r in rates)} ({ALONE_POSTS} bulk POSTs of "
        f"{len(ids):,} devices each, {PARALLEL} in flight; cpu: {meter.stop().describe()})"
    )
    return float(rates[1])


def sse(run: Run, server: Server, loader: Pool) -> None:
    plan = run.plan
    admin = run.fixture.admin
    ids = [dev for dev, _ in run.fixture.devices[: plan.sse_devices]]
    if len(ids) < plan.sse_devices:
        raise RuntimeError(f"{len(ids)} devices provisioned, {plan.sse_devices} needed")
    rate = SHARE * _making_rate(run, server, loader, ids)
    run.note(
        f"SSE: R = {SHARE} x C = {rate:,.0f} events/s offered to both servers: a bulk POST "
        f"of {len(ids):,} devices every {len(ids) / rate:.3f} s for {plan.sse_seconds:.0f} s"
    )
    phase = _Phase(run, loader, ids, rate)
    data = run.workdir / "event-data.json"
    data.write_bytes(_event_data(server, admin))
    argv = [sys.executable, str(BENCH_DIR / "_fanout_bare_sse.py"), "--data-file", str(data)]
    bare = run.own(Server("bare-sse", argv, run.backend.env(), run.workdir))
    bare.wait_ready(60.0)
    sides = [("telehub", server, f"/api/v1/events?token={admin}"), ("bare", bare, "/api/v1/events")]
    for label, srv, target in sides:  # warm-up: connections, the loader's session, caches
        phase.measure(label, srv, target, min(plan.sse_steps), 1.0)
    steps: list[tuple[SseRun, SseRun]] = []
    for k, n in enumerate(plan.sse_steps):
        runs = {}
        for label, srv, target in sides[:: 1 if k % 2 == 0 else -1]:  # take turns first
            console.print(f"SSE: {label}, {n} clients at {rate:,.0f} events/s …")
            runs[label] = phase.measure(label, srv, target, n, plan.sse_seconds)
            console.print(f"  {runs[label].describe()}", highlight=False)
        steps.append((runs["telehub"], runs["bare"]))
    _figures(run, steps, rate)
    run.note(f"  event size: {len(data.read_bytes()) + 30} bytes on the wire (approx.)")


def _figures(run: Run, steps: list[tuple[SseRun, SseRun]], rate: float) -> None:
    for hub, bare in steps:
        run.report.figures.append(
            Figure(
                f"SSE deliveries/s, {hub.clients} clients x {rate:,.0f} events/s",
                f"{hub.rate:,.0f}{hub.flag}",
                f"{bare.rate:,.0f} (bare Starlette){bare.flag}",
                hub.rate / bare.rate if bare.rate else None,
                "(step)",
                None,
            )
        )
    kept = [(hub, bare) for hub, bare in steps if bare.kept_up]
    if kept:
        hub, bare = kept[-1]
        ratio: float | None = hub.rate / bare.rate
        what = f"SSE at {hub.clients} clients (the most the bare server kept up with)"
        value = f"{hub.rate:,.0f}/s, p99 {hub.hist.ms(0.99)} ms{hub.flag}"
        base = f"{bare.rate:,.0f}/s, p99 {bare.hist.ms(0.99)} ms"
        ok: bool | None = ratio is not None and ratio >= TARGET and hub.complete
    else:
        what, value, base, ratio, ok = (
            "SSE deliveries/s",
            "—",
            "bare kept up at no step",
            None,
            None,
        )
    run.report.figures.append(Figure(what, value, base, ratio, f"ratio ≥ {TARGET}", ok))
    if kept and kept[-1] == steps[-1]:
        run.note(
            "SSE: the bare server kept up at every step: its limit lies beyond the largest "
            "step run (the clients' budget), so the headline is at the largest step"
        )
    for hub, bare in steps:
        run.note(f"  {hub.describe()}")
        run.note(f"  {bare.describe()}")
