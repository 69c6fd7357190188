"""The aiohttp load clients (run in the benchmark process, never in the server's)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

# Batch timestamps start a week ago: well inside the accepted range, never "future".
BASE_MS = (int(time.time()) - 7 * 86_400) * 1000
METRICS = [f"m{k}" for k in range(10)]
STEPS = 10  # timestamps per request; METRICS x STEPS = 100 readings
SINGLE_BODY = b'{"values": {"t": 1.0}}'

Row = tuple[str, str, int, float]


def batch_messages(seq: int) -> list[dict[str, Any]]:
    """Request ``seq`` of one device: 10 timestamps x 10 metrics, keys never repeated."""
    ts0 = BASE_MS + seq * STEPS
    return [
        {"ts": ts0 + j, "values": {m: seq * STEPS + j + k / 10 for k, m in enumerate(METRICS)}}
        for j in range(STEPS)
    ]


def batch_rows(device_id: str, seq: int) -> list[Row]:
    """The rows the server stores for that request (ts in microseconds)."""
    return [
        (device_id, metric, msg["ts"] * 1000, value)
        for msg in batch_messages(seq)
        for metric, value in msg["values"].items()
    ]


@dataclass
class Client:
    device_id: str
    token: str
    next_seq: int = 0
    done: list[int] = field(default_factory=list)  # seqs sent in timed phases, in order


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: Counter[str]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        return 1000 * quantile(self.latencies, q) if self.latencies else 0.0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def _session(clients: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def hammer(
    base: str,
    clients: list[Client],
    body: Callable[[int], bytes],
    *,
    duration: float | None = None,
    per_client: int | None = None,
    record: bool = False,
) -> LoadResult:
    """Every client posts back to back, one request in flight each, for ``duration`` s
    or ``per_client`` requests. ``record`` keeps each sent seq (to replay as raw rows)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    start = asyncio.Event()
    async with _session(len(clients)) as session:

        async def worker(c: Client, deadline: list[float]) -> int:
            url = f"{base}/api/v1/devices/{c.device_id}/telemetry"
            headers = {"Authorization": f"Bearer {c.token}", "Content-Type": "application/json"}
            sent = 0
            await start.wait()
            while per_client is None or sent < per_client:
                if duration is not None and time.perf_counter() >= deadline[0]:
                    break
                seq, data = c.next_seq, body(c.next_seq)
                c.next_seq += 1
                t0 = time.perf_counter()
                async with session.post(url, data=data, headers=headers) as resp:
                    text = await resp.read()
                    if resp.status != 202:  # stop this client: the caller reports it
                        errors[f"HTTP {resp.status}: {text[:200].decode(errors='replace')}"] += 1
                        break
                latencies.append(time.perf_counter() - t0)
                if record:
                    c.done.append(seq)
                sent += 1
            return sent

        deadline = [0.0]
        tasks = [asyncio.create_task(worker(c, deadline)) for c in clients]
        await asyncio.sleep(0.05)  # let every worker reach the start line
        t0 = time.perf_counter()
        deadline[0] = t0 + (duration or 0.0)
        start.set()
        counts = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return LoadResult(sum(counts), elapsed, latencies, errors)


def batch_body(seq: int) -> bytes:
    return orjson.dumps(batch_messages(seq))


def single_body(_seq: int) -> bytes:
    return SINGLE_BODY


async def time_queries(
    base: str,
    token: str,
    device_id: str,
    params: dict[str, str],
    *,
    repeat: int,
    buckets: int,
    warmups: int,
) -> list[float]:
    """Sequential GETs (one at a time, like a dashboard); returns each latency in s."""
    url = f"{base}/api/v1/devices/{device_id}/telemetry"
    headers = {"Authorization": f"Bearer {token}"}
    out: list[float] = []
    async with _session(1) as session:
        for i in range(repeat + warmups):
            t0 = time.perf_counter()
            async with session.get(url, params=params, headers=headers) as resp:
                payload = await resp.read()
                elapsed = time.perf_counter() - t0
                if resp.status != 200:
                    raise RuntimeError(f"query failed: HTTP {resp.status}: {payload[:300]!r}")
            got = len(orjson.loads(payload)["series"][params["metric"]])
            if got != buckets:
                raise RuntimeError(f"query returned {got} buckets, expected {buckets}")
            if i >= warmups:
                out.append(elapsed)
    return out


async def probe_latency(base: str, n: int = 10) -> float:
    """p50 of sequential GET /healthz on one connection: ~0 ms unless responses stall."""
    out: list[float] = []
    async with _session(1) as session:
        for _ in range(n + 2):
            t0 = time.perf_counter()
            async with session.get(f"{base}/healthz") as resp:
                await resp.read()
            out.append(time.perf_counter() - t0)
    return quantile(out[2:], 0.5)
