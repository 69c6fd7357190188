"""Live subscribers for the MQTT benchmark: one ``telehub api`` and its WebSocket clients.

The production topology: the bridge (``telehub ingest``) publishes what it commits
on the Redis bus, a separate ``telehub api`` on the same database hears it and
pushes it to every WebSocket client subscribed to all devices. The clients are
``_fanout_wire`` raw connections in spawned worker processes (``_fanout_proc``);
unlike the fan-out benchmark's, they only count: readings (``"value":`` in each
``readings`` frame, a C-speed byte count) and ``gap`` frames, so their CPU stays
small next to the bridge's.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from _fanout_clients import SUBSCRIBE
from _fanout_live import split
from _fanout_plan import metric
from _fanout_proc import Command, Pool, serve_commands
from _fanout_wire import RawClient, open_raw
from _harness import TELEHUB, Backend, Server

BUS_URL = os.environ.get("TELEHUB_BENCH_BUS_URL", "redis://127.0.0.1:6379/0")
QUIET_S = 5.0  # stop waiting for the subscribers after this long without a new reading
CAP_S = 120.0  # and in any case after this long

_READINGS = b'{"type":"readings"'
_GAP = b'{"type":"gap"'
_SUBSCRIBED = b'{"type":"subscribed"'
_VALUE = b'"value":'


def live_knobs() -> dict[str, str]:
    """TELEHUB_BUS_SUBSCRIBER_BACKLOG and TELEHUB_WS_* pass through, to try settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if k == "TELEHUB_BUS_SUBSCRIBER_BACKLOG" or k.startswith("TELEHUB_WS_")
    }


def bus_env() -> dict[str, str]:
    """The bus settings shared by the bridge and the api: a channel prefix for this run only."""
    prefix = f"bench-mqtt-{os.getpid()}-{secrets.token_hex(4)}"
    return {**live_knobs(), "TELEHUB_BUS_URL": BUS_URL, "TELEHUB_BUS_CHANNEL_PREFIX": prefix}


def check_bus() -> str | None:
    """Why the bus cannot be used (None if Redis answers)."""
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        client = Redis.from_url(BUS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisError, OSError) as exc:
        return f"Redis at {BUS_URL} does not answer ({exc})"
    return None


# ---------------------------------------------------------------- worker side


@dataclass
class _Count:
    """What one connection saw since the last reset."""

    subscribed: asyncio.Future[None]
    readings: int = 0
    gaps: int = 0
    dropped: int = 0  # readings the gap frames said were dropped (slow consumer)
    interrupted: int = 0  # gap frames for readings the bus lost, uncounted
    last: float = 0.0  # monotonic time of the last readings frame

    def __call__(self, msg: bytes, now: float) -> None:
        if msg.startswith(_READINGS):
            self.readings += msg.count(_VALUE)
            self.last = now
        elif msg.startswith(_GAP):
            self.gaps += 1
            dropped = orjson.loads(msg).get("dropped")
            if dropped is None:
                self.interrupted += 1
            else:
                self.dropped += dropped
        elif msg.startswith(_SUBSCRIBED) and not self.subscribed.done():
            self.subscribed.set_result(None)


class Counters:
    """A worker's connections, all subscribed to every device; commands from the pool."""

    def __init__(self) -> None:
        self._conns: list[tuple[RawClient, _Count]] = []

    async def __call__(self, command: Command) -> Any:
        match command:
            case ("connect", str(url), int(n)):
                loop = asyncio.get_running_loop()
                fresh = []
                for _ in range(n):
                    count = _Count(loop.create_future())
                    client = await open_raw(url, count)
                    client.send_text(SUBSCRIBE)
                    fresh.append((client, count))
                    self._conns.append((client, count))
                async with asyncio.timeout(30):
                    await asyncio.gather(*(count.subscribed for _, count in fresh))
                return len(self._conns)
            case ("reset",):
                for _, count in self._conns:
                    count.readings = count.gaps = count.dropped = count.interrupted = 0
                    count.last = 0.0
                return None
            case ("settle", int(expected), float(quiet), float(cap)):
                await self._settle(expected, quiet, cap)
                return self._stats()
            case ("close",) | ("exit",):
                for client, _ in self._conns:
                    client.close()
                self._conns.clear()
                return None
        raise ValueError(f"unknown command {command!r}")

    async def _settle(self, expected: int, quiet: float, cap: float) -> None:
        """Until every connection has ``expected`` readings, received or reported dropped,
        or nothing moved for ``quiet`` s, or ``cap`` s passed."""
        counts = [count for _, count in self._conns]
        deadline = time.monotonic() + cap
        seen, moved = -1, time.monotonic()
        while time.monotonic() < deadline:
            if all(c.readings + c.dropped >= expected and not c.interrupted for c in counts):
                return
            total = sum(c.readings for c in counts)
            if total != seen:
                seen, moved = total, time.monotonic()
            elif time.monotonic() - moved > quiet:
                return
            await asyncio.sleep(0.02)

    def _stats(self) -> dict[str, Any]:
        counts = [count for _, count in self._conns]
        last = max((c.last for c in counts), default=0.0)
        return {
            "counts": [c.readings for c in counts],
            "gaps": sum(c.gaps for c in counts),
            "dropped": [c.dropped for c in counts],
            "interrupted": sum(c.interrupted for c in counts),
            # CLOCK_MONOTONIC is one clock machine-wide: shifted to wall-clock time here.
            "last": last + time.time() - time.monotonic() if last else 0.0,
        }


def counter_worker(conn: multiprocessing.connection.Connection) -> None:
    serve_commands(conn, Counters)


# ---------------------------------------------------------------- orchestrator side


@dataclass(frozen=True)
class Delivered:
    """What the subscribers got during one measurement (or several, added)."""

    counts: tuple[int, ...] = ()  # readings received, per subscriber
    dropped: tuple[int, ...] = ()  # readings its gaps said its full backlog dropped
    gaps: int = 0
    interrupted: int = 0  # gaps for an uncounted loss (the api lost Redis)
    last: float = 0.0  # wall-clock time of the last reading any subscriber got

    def __add__(self, other: Delivered) -> Delivered:
        return Delivered(
            _add(self.counts, other.counts),
            _add(self.dropped, other.dropped),
            self.gaps + other.gaps,
            self.interrupted + other.interrupted,
            max(self.last, other.last),
        )

    @property
    def low(self) -> int:
        return min(self.counts, default=0)

    @property
    def high(self) -> int:
        return max(self.counts, default=0)

    def complete(self, committed: int) -> bool:
        return bool(self.counts) and self.low == self.high == committed and not self.gaps

    def unaccounted(self, committed: int) -> int:
        """Readings missing with no gap to say so, all subscribers together."""
        return sum(
            max(0, committed - c - d) for c, d in zip(self.counts, self.dropped, strict=True)
        )

    def describe(self, committed: int) -> str:
        n = len(self.counts)
        short = sum(1 for c in self.counts if c < committed)
        extra = sum(max(0, c - committed) for c in self.counts)
        silent = self.unaccounted(committed)
        return (
            f"{n} subscribers got {self.low:,}…{self.high:,} of {committed:,} committed"
            + (f" ({short} short)" if short else "")
            + (
                f", [yellow]{self.gaps} gaps[/] ({sum(self.dropped):,} readings dropped by full "
                f"backlogs, {self.interrupted} bus interruptions)"
                if self.gaps
                else ""
            )
            + (f", [red]{silent:,} missing without a gap[/]" if silent else "")
            + (f", [red]{extra:,} more than committed[/]" if extra else "")
        )


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Per subscriber (the same order in every measurement)."""
    return tuple(x + y for x, y in zip(a, b, strict=True)) if a and b else a or b


@dataclass
class Subscribers:
    """``telehub api`` on the backend's database and bus, and its subscribed clients."""

    server: Server
    pool: Pool
    admin: str
    count: int
    prefix: str

    @property
    def pids(self) -> list[int]:
        return self.pool.pids

    def reset(self) -> None:
        self.pool.call("reset")

    async def settle(self, expected: int) -> Delivered:
        """Wait for every subscriber to have ``expected`` readings (or to stall)."""
        stats = await asyncio.to_thread(
            self.pool.call, "settle", expected, QUIET_S, CAP_S, timeout=CAP_S + 30
        )
        return Delivered(
            tuple(c for s in stats for c in s["counts"]),
            tuple(d for s in stats for d in s["dropped"]),
            sum(s["gaps"] for s in stats),
            sum(s["interrupted"] for s in stats),
            max(s["last"] for s in stats),
        )

    def dropped_total(self) -> float:
        """The api's telehub_bus_dropped_total (readings its subscribers' backlogs dropped)."""
        return metric(self.server, self.admin, "telehub_bus_dropped_total")

    def complaints(self) -> list[str]:
        text = self.server.log_path.read_text(errors="replace")
        return [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]


@contextlib.contextmanager
def subscribers(
    backend: Backend, env: dict[str, str], admin: str, count: int, procs: int
) -> Iterator[Subscribers]:
    """Start the api and ``count`` clients in ``procs`` processes; stop them all on exit."""
    with contextlib.ExitStack() as stack:
        server = Server(f"api-{backend.name}", [str(TELEHUB), "api"], env, backend.workdir)
        stack.callback(server.stop)
        server.wait_ready(60)
        procs = max(1, min(procs, count))
        pool = Pool("mqtt-subscribers", counter_worker, procs)
        stack.callback(pool.close)
        url = f"ws://127.0.0.1:{server.port}/api/v1/ws?token={admin}"
        pool.call_each([("connect", url, k) for k in split(count, procs)], timeout=60)
        prefix = env["TELEHUB_BUS_CHANNEL_PREFIX"]
        yield Subscribers(server, pool, admin, count, prefix)
