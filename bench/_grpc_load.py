"""The gRPC benchmark's clients: Publish streams, PublishBatch calls and REST batch POSTs.

They run in the benchmark process (as ``_load.hammer`` does), never in the server's.
Every client sends its own pre-built messages, one batch in flight at a time (a stream
keeps as many in flight as flow control and the server's window allow), from a common
start line until the deadline or the end of its pool, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from _cpu import _machine_busy, _postgres_cpu, _proc_cpu
from _grpc_feed import Feed
from telehub.client.grpc_client import AsyncGrpcClient, GrpcError
from telehub.v1 import telemetry_pb2

TRANSPORTS = {
    "series": "Publish stream (series)",
    "stream": "Publish stream (rows)",
    "unary": "PublishBatch (rows)",
    "rest": "REST batch",
}
STREAMS = ("series", "stream")


@dataclass(frozen=True)
class Phase:
    transport: str  # a key of TRANSPORTS
    clients: int  # concurrent clients (streams), one device each
    size: int  # readings per batch

    def __str__(self) -> str:
        return f"{self.name}, {self.size:,}/batch"

    @property
    def name(self) -> str:
        return f"{TRANSPORTS[self.transport]} x{self.clients}"


@dataclass(frozen=True)
class Pool:
    """One client's batches, built before the start: seqs ``seqs`` of one device."""

    device_id: str
    token: str
    seqs: range
    items: list[Any]  # ReadingBatch (gRPC) or a JSON body (REST)


def build_pools(
    phase: Phase, feed: Feed, devices: Sequence[tuple[str, str]], per_client: int
) -> list[Pool]:
    pools = []
    for device_id, token in devices[: phase.clients]:
        seqs = feed.take(per_client)
        if phase.transport == "rest":
            items: list[Any] = [feed.body(seq) for seq in seqs]
        elif phase.transport == "series":
            items = [feed.series_message(device_id, seq) for seq in seqs]
        else:
            items = [feed.message(device_id, seq) for seq in seqs]
        pools.append(Pool(device_id, token, seqs, items))
    return pools


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far: the server, PostgreSQL, this process (the clients), the machine."""

    server: float
    postgres: float
    client: float
    busy: float
    wall: float

    @classmethod
    def snap(cls, server_pid: int, *, postgres: bool) -> Usage:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            _proc_cpu(server_pid),
            _postgres_cpu() if postgres else 0.0,
            me.ru_utime + me.ru_stime,
            _machine_busy(),
            time.monotonic(),
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.server - other.server,
            self.postgres - other.postgres,
            self.client - other.client,
            self.busy - other.busy,
            self.wall - other.wall,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.server + other.server,
            self.postgres + other.postgres,
            self.client + other.client,
            self.busy + other.busy,
            self.wall + other.wall,
        )

    def shares(self, *, postgres: bool) -> dict[str, float]:
        """Shares of one core; "other" is whatever else ran (clock ticks: never below 0)."""
        parts = {"server": self.server, "postgres": self.postgres, "clients": self.client}
        if not postgres:
            del parts["postgres"]
        parts["other"] = max(0.0, self.busy - sum(parts.values()))
        wall = self.wall or 1.0
        return {k: v / wall for k, v in parts.items()}

    def describe(self, *, postgres: bool) -> str:
        return ", ".join(f"{k} {100 * v:.0f}%" for k, v in self.shares(postgres=postgres).items())


@dataclass
class Sent:
    """What one client sent and what the server answered."""

    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    latencies: list[float] = field(default_factory=list)
    error: str | None = None
    end: float = 0.0

    def count(self, summary: telemetry_pb2.PublishSummary) -> None:
        self.accepted += summary.accepted
        self.duplicates += summary.duplicates
        self.rejected += summary.rejected


@dataclass
class Result:
    phase: Phase
    seconds: float
    clients: list[Sent]
    pools: list[Pool]
    usage: Usage

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.clients)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> Counter[str]:
        return Counter(c.error for c in self.clients if c.error is not None)

    @property
    def ran_dry(self) -> int:
        """Clients that sent their whole pool before the deadline (the phase ended early)."""
        return sum(c.batches == len(p.items) for c, p in zip(self.clients, self.pools, strict=True))

    def sent_seqs(self) -> list[tuple[str, range]]:
        return [
            (p.device_id, p.seqs[: c.batches])
            for c, p in zip(self.clients, self.pools, strict=True)
        ]


class Gate:
    """The start line: every client connects first, then all start at once."""

    def __init__(self, clients: int) -> None:
        self._waiting = clients
        self._all_ready = asyncio.Event()
        self._start = asyncio.Event()
        self.t0 = 0.0
        self.deadline = 0.0

    async def ready(self) -> None:
        """A client is connected: it waits here for the start."""
        self._waiting -= 1
        if self._waiting == 0:
            self._all_ready.set()
        await self._start.wait()

    async def all_ready(self) -> None:
        await self._all_ready.wait()

    def open(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + seconds
        self._start.set()

    def due(self) -> bool:
        return time.perf_counter() >= self.deadline


Worker = Callable[[Pool, Gate], Coroutine[Any, Any, Sent]]


async def run_phase(
    phase: Phase,
    pools: list[Pool],
    seconds: float,
    *,
    grpc_target: str,
    http_base: str,
    usage: Callable[[], Usage],
) -> Result:
    gate = Gate(len(pools))
    async with contextlib.AsyncExitStack() as stack:
        if phase.transport == "rest":
            session = await stack.enter_async_context(_session(len(pools)))
            worker: Worker = functools.partial(_rest, session, http_base, phase.size)
        elif phase.transport in STREAMS:
            worker = functools.partial(_stream, grpc_target, phase.size)
        else:
            worker = functools.partial(_unary, grpc_target, phase.size)
        async with asyncio.TaskGroup() as tasks:
            sent = [
                tasks.create_task(worker(pool, gate), name=f"{phase.transport}-{i}")
                for i, pool in enumerate(pools)
            ]
            await gate.all_ready()
            before = usage()
            gate.open(seconds)
        after = usage()
    clients = [task.result() for task in sent]
    elapsed = max(c.end for c in clients) - gate.t0
    return Result(phase, elapsed, clients, pools, after - before)


async def _stream(target: str, size: int, pool: Pool, gate: Gate) -> Sent:
    out = Sent()
    async with AsyncGrpcClient(target, token=pool.token, timeout=60) as client:
        await client.health()  # connected before the start

        def batches() -> Iterator[telemetry_pb2.ReadingBatch]:
            for message in pool.items:
                if gate.due():
                    return
                out.batches += 1
                out.readings += size
                yield message

        await gate.ready()
        try:
            out.count(await client.publish(batches()))
        except GrpcError as exc:
            out.error = str(exc)
            if exc.summary is not None:
                out.count(exc.summary)
        out.end = time.perf_counter()
    return out


async def _unary(target: str, size: int, pool: Pool, gate: Gate) -> Sent:
    out = Sent()
    async with AsyncGrpcClient(target, token=pool.token, timeout=60) as client:
        await client.health()
        await gate.ready()
        for message in pool.items:
            if gate.due():
                break
            t0 = time.perf_counter()
            try:
                summary = await client.publish_batch(message)
            except GrpcError as exc:  # stop this client: the caller reports it
                out.error = str(exc)
                break
            out.latencies.append(time.perf_counter() - t0)
            out.batches += 1
            out.readings += size
            out.count(summary)
        out.end = time.perf_counter()
    return out


def _session(clients: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _rest(
    session: aiohttp.ClientSession, base: str, size: int, pool: Pool, gate: Gate
) -> Sent:
    out = Sent()
    url = f"{base}/api/v1/devices/{pool.device_id}/telemetry"
    headers = {"Authorization": f"Bearer {pool.token}", "Content-Type": "application/json"}
    async with session.get(f"{base}/healthz") as resp:  # connected before the start
        await resp.read()
    await gate.ready()
    for body in pool.items:
        if gate.due():
            break
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            text = await resp.read()
        if resp.status != 202:
            out.error = f"HTTP {resp.status}: {text[:200].decode(errors='replace')}"
            break
        out.latencies.append(time.perf_counter() - t0)
        answer = orjson.loads(text)
        out.batches += 1
        out.readings += size
        out.accepted += answer["accepted"]
        out.duplicates += answer["duplicates"]
    out.end = time.perf_counter()
    return out
