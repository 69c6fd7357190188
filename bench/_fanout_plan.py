"""What a fan-out run does (its plan), and what all its phases share (the run)."""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _fanout_stats import Histogram
from _harness import Backend, Fixture, Server, free_port
from _report import Report
from telehub.config import Settings

BENCH_DIR = Path(__file__).resolve().parent
# telehub's frame tick as the benchmark's servers run it (their TELEHUB_WS_* are unset):
# the bare WebSocket server coalesces on the same clock.
FRAME_INTERVAL_S: float = Settings.model_fields["ws_frame_interval_seconds"].default
SSE_BEHIND_S = 1.0  # an SSE run keeps up if its last event comes within this of the last 202


@dataclass(frozen=True)
class Plan:
    clients: int  # live WebSocket clients
    client_procs: int
    latency_rate: float  # readings/s of the latency measurement
    latency_seconds: float
    posts_per_second: float  # the loader's POST rate; readings per POST grow with the rate
    rate_steps: tuple[float, ...]  # readings/s, telehub's and the bare server's alike
    step_seconds: float
    pause_s: float  # the clients' read pause in the rate steps (_fanout_wire)
    idle: int  # idle WebSocket connections for the memory figure
    idle_procs: int
    deflate_baseline: bool  # also the bare server with permessage-deflate (information)
    sse_steps: tuple[int, ...]  # SSE clients, step by step
    sse_seconds: float  # the paced feed of each SSE step
    sse_devices: int  # devices of a bulk command: events a POST

    def per_post(self, rate: float) -> int:
        """Readings a POST (telehub) or a batch (the bare server) at ``rate`` readings/s."""
        return max(1, round(rate / self.posts_per_second))

    def __str__(self) -> str:
        return (
            f"{self.clients} live clients in {self.client_procs} processes, latency at "
            f"{self.latency_rate:,.0f} readings/s for {self.latency_seconds:.0f} s, steps of "
            f"{self.step_seconds:.0f} s, {self.idle:,} idle connections, "
            f"SSE steps of {', '.join(map(str, self.sse_steps))} clients x "
            f"{self.sse_seconds:.0f} s"
        )


FULL = Plan(
    clients=100,
    client_procs=4,
    latency_rate=2000.0,
    latency_seconds=10.0,
    posts_per_second=200.0,
    rate_steps=(5000.0, 10000.0, 20000.0, 40000.0, 80000.0, 160000.0),
    step_seconds=5.0,
    pause_s=0.005,
    idle=5000,
    idle_procs=10,
    deflate_baseline=True,
    sse_steps=(50, 100, 200, 400),
    sse_seconds=8.0,
    sse_devices=1000,
)
QUICK = Plan(
    clients=100,
    client_procs=4,
    latency_rate=2000.0,
    latency_seconds=4.0,
    posts_per_second=200.0,
    rate_steps=(10000.0, 40000.0, 80000.0),
    step_seconds=3.0,
    pause_s=0.005,
    idle=2000,
    idle_procs=4,
    deflate_baseline=False,
    sse_steps=(50, 200, 400),
    sse_seconds=4.0,
    sse_devices=1000,
)


@dataclass(frozen=True)
class Step:
    """One rate of a live measurement: what was sent and what every client saw."""

    rate: float  # planned readings/s
    sent: int  # readings accepted (telehub) or broadcast (bare)
    counts: list[int]  # readings each client received
    gaps: int
    hist: Histogram
    start: float  # first POST / broadcast (monotonic)
    sent_end: float  # last 202 answer / broadcast
    last: float  # last reading received, any client
    seconds: float  # planned duration
    cpu: str
    errors: list[str] = field(default_factory=list)
    extra: str = ""

    @property
    def deliveries(self) -> int:
        return sum(self.counts)

    @property
    def rate_delivered(self) -> float:
        """Readings received by all clients together per second, first send → last receive."""
        span = self.last - self.start
        return self.deliveries / span if span > 0 else 0.0

    @property
    def slip(self) -> float:
        """How much later than planned the sender finished (it could not keep the pace)."""
        return self.sent_end - self.start - self.seconds

    @property
    def complete(self) -> bool:
        return bool(self.counts) and min(self.counts) >= self.sent > 0 and not self.errors

    def ok(self, p99_limit: float) -> bool:
        return (
            self.complete
            and self.gaps == 0
            and self.hist.quantile(0.99) <= p99_limit
            and self.slip <= 1.0
        )

    def describe(self) -> str:
        return (
            f"{self.rate:,.0f}/s: {self.rate_delivered:,.0f} deliveries/s, "
            f"min {min(self.counts, default=0):,}/{self.sent:,} per client, gaps {self.gaps}, "
            f"p50 {self.hist.ms(0.5)} / p99 {self.hist.ms(0.99)} / max {self.hist.ms(1.0)} ms, "
            f"sender slip {max(0.0, self.slip):.2f} s"
            + (f", {self.extra}" if self.extra else "")
            + "".join(f", [red]{e}[/]" for e in self.errors)
            + f"; cpu: {self.cpu}"
        )


@dataclass(frozen=True)
class SseRun:
    """One server, one client count, one paced feed: what was made and what clients got."""

    label: str
    clients: int
    events: int  # made: POSTs answered x devices
    counts: list[int]  # events each client received
    hist: Histogram  # receive - its POST's 202, every event x client
    start: float  # first POST (its scheduled time)
    answered: float  # last 202
    last: float  # last event received, any client
    slip: float  # last 202 - last POST's scheduled time
    cpu: str
    errors: list[str]

    @property
    def rate(self) -> float:
        span = self.last - self.start
        return sum(self.counts) / span if span > 0 else 0.0

    @property
    def complete(self) -> bool:
        return bool(self.counts) and min(self.counts) >= self.events > 0 and not self.errors

    @property
    def kept_up(self) -> bool:
        return self.complete and self.last - self.answered <= SSE_BEHIND_S

    @property
    def flag(self) -> str:
        """For the table: fell behind, or kept up with 202s that came late (slower making)."""
        if not self.kept_up:
            return " [red](fell behind)[/]"
        return f" (202s {self.slip:.1f} s late)" if self.slip > SSE_BEHIND_S else ""

    def describe(self) -> str:
        return (
            f"{self.label}, {self.clients} clients: {self.rate:,.0f} deliveries/s, "
            f"min {min(self.counts, default=0):,}/{self.events:,} per client, latency p50 "
            f"{self.hist.ms(0.5)} / p99 {self.hist.ms(0.99)} / max {self.hist.ms(1.0)} ms, "
            f"last event {self.last - self.answered:+.2f} s after the last 202, "
            f"last 202 {max(0.0, self.slip):.2f} s after its slot, "
            + ("[green]kept up[/]" if self.kept_up else "[red]fell behind[/]")
            + "".join(f", [red]{e}[/]" for e in self.errors)
            + f"; cpu: {self.cpu}"
        )


class BareWs:
    """``_fanout_bare_ws.py`` in a subprocess, commanded line by line on its stdin."""

    def __init__(self, workdir: Path, *, compression: bool) -> None:
        self.port = free_port()
        self.log_path = workdir / f"bare-ws-{self.port}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        argv = [
            sys.executable,
            str(BENCH_DIR / "_fanout_bare_ws.py"),
            *("--port", str(self.port), "--interval", str(FRAME_INTERVAL_S)),
        ]
        self.proc = subprocess.Popen(
            [*argv, *(["--compression"] if compression else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        if self._read() != "ready":
            raise RuntimeError(f"bare WebSocket server failed:\n{self.log_path.read_text()}")
        self.url = f"ws://127.0.0.1:{self.port}/"

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"bare WebSocket server exited:\n{self.log_path.read_text()}")
        return line

    def command(self, line: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read().split()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # its command loop ends, and so does the server
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def metric(server: Server, admin: str, name: str) -> float:
    """One unlabelled sample of telehub's /metrics (NaN if it is not there)."""
    req = urllib.request.Request(
        server.base + "/metrics", headers={"Authorization": f"Bearer {admin}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        found = re.search(rf"^{name} ([0-9.e+-]+)$", resp.read().decode(), re.M)
    return float(found.group(1)) if found else math.nan


@dataclass
class Run:
    """The telehub database and fixture, the report, and what to stop at the end."""

    plan: Plan
    backend: Backend
    fixture: Fixture
    report: Report
    stack: contextlib.ExitStack
    started: float = field(default_factory=time.monotonic)

    @property
    def workdir(self) -> Path:
        return self.backend.workdir

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def own(self, thing: Any) -> Any:
        """Stop ``thing`` (a pool, server…) when the run ends, however it ends."""
        self.stack.callback(thing.close if hasattr(thing, "close") else thing.stop)
        return thing
