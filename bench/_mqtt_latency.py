"""The latency phase: publish at a fixed rate, note when each reading becomes visible.

A thread paces lines into the C publishers' stdin and notes each line's send
time; a connection polls ``readings`` every POLL_S and notes when each reading
first appears, so each latency is an upper bound by at most one poll cycle.
The baseline is the same feed through the broker to ``mosquitto_sub -F %U``.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import threading
import time
from dataclasses import dataclass

from _load import quantile
from _mqtt import (
    BASE_MS,
    HUB_TOPIC,
    RAW_TOPIC,
    check_exit,
    feed,
    publisher,
    received,
    subscriber,
    wait_exit,
    wait_sub,
)
from _mqtt_live import Delivered
from _mqtt_run import MAX_MESSAGES, QUIET_S, Plan, Run, describe
from _report import Figure, Report

POLL_S = 0.005  # readings poll interval
P99_TARGET_MS = 250.0


@dataclass(frozen=True)
class Latency:
    sent: int
    seen: int
    rate: float  # achieved send rate
    ms: list[float]
    cycle_ms: float  # mean poll cycle (hub) or 0 (raw: exact receive times)
    committed: int = 0  # readings of this run found in the store (hub)
    delivered: Delivered | None = None  # what the WebSocket subscribers got (hub)


async def latency(run: Run, rate: float, seconds: float, *, raw: bool) -> Latency:
    n_dev = len(run.devices)
    n = min(MAX_MESSAGES, max(n_dev, int(rate * seconds)))
    first = run.take(math.ceil(n / n_dev))
    out = run.backend.workdir / "sub-latency.txt"
    sub = None
    if raw:
        with out.open("wb") as sink:
            sub = subscriber(run.children, run.broker, run.client_id("sub"), 1, n, sink)
    pubs = []
    for dev in run.devices:
        cid = run.client_id("lat")
        topic = (RAW_TOPIC if raw else HUB_TOPIC).format(dev)
        pubs.append(publisher(run.children, run.broker, cid, topic, 1, subprocess.PIPE))
        run.broker.wait_log(f" as {cid} (")
    # mosquitto_pub polls for its CONNACK in 100 ms sleeps: lines it found only after that
    # would carry that wait (~80 ms for the first few hundred messages).
    await asyncio.sleep(0.5)
    run.settle()
    if not raw:
        run.reset_subscribers()
    sent = [0.0] * n
    pipes = [p.stdin for p in pubs if p.stdin is not None]
    feeder = threading.Thread(target=feed, args=(pipes, first, n, rate, sent), daemon=True)
    seen: dict[tuple[int, int], float] = {}
    polls, poll_t0 = 0, time.time()
    before = run.snap()
    feeder.start()
    try:
        if sub is not None:
            await asyncio.to_thread(feeder.join)
            await wait_sub(sub, out, QUIET_S[1])
            for stamp, topic, payload in received(out):
                ts = int(payload.split(b'"ts": ', 1)[1].split(b",", 1)[0])
                seen[(run.devices.index(topic.split("/")[3]), ts - BASE_MS)] = stamp
        else:
            lows, changed_at = [first] * n_dev, time.time()
            while len(seen) < n and time.time() - changed_at < QUIET_S[1]:
                rows = await run.probe.since(lows)
                now = time.time()
                polls += 1
                for key in rows:
                    if key not in seen:
                        seen[key], changed_at = now, now
                for k in range(n_dev):
                    while (k, lows[k]) in seen:
                        lows[k] += 1
                await asyncio.sleep(POLL_S)
    finally:
        for pipe in pipes:
            pipe.close()
    cycle_ms = 1000 * (time.time() - poll_t0) / polls if polls else 0.0
    await asyncio.to_thread(feeder.join)
    await wait_exit(pubs)
    check_exit(pubs, "mosquitto_pub")
    run.charge(f"latency {'raw' if raw else 'bridge'}", before)
    delivered = None if raw else await run.delivered(len(seen))
    ms = []
    for i in range(n):
        key = (i % n_dev, first + i // n_dev)
        if key in seen:
            ms.append(1000 * (seen[key] - sent[i]))
    rate_sent = (n - 1) / (sent[-1] - sent[0])
    return Latency(n, len(ms), rate_sent, ms, cycle_ms, len(seen), delivered)


async def bench_latency(run: Run, peak: float, plan: Plan, rep: Report) -> None:
    rate = peak / 2
    hub = await latency(run, rate, plan.latency_seconds, raw=False)
    raw = await latency(run, rate, plan.latency_seconds, raw=True)
    p99 = quantile(hub.ms, 0.99) if hub.ms else math.inf
    raw_p99 = quantile(raw.ms, 0.99) if raw.ms else math.inf
    rep.figures.append(
        Figure(
            f"p99 publish→commit at {rate:,.0f} msg/s (half peak), QoS 1",
            f"{p99:,.1f} ms",
            f"{raw_p99:,.1f} ms (publish→mosquitto_sub)",
            None,
            f"≤ {P99_TARGET_MS:.0f} ms",
            p99 <= P99_TARGET_MS,
        )
    )
    for what, lat in (("bridge", hub), ("raw", raw)):
        ms = lat.ms or [math.nan]
        cpu = describe(run.cpu[f"latency {what}"])
        rep.notes.append(
            f"latency {what}: {lat.seen:,}/{lat.sent:,} seen, sent at {lat.rate:,.0f} msg/s; "
            f"p50 {quantile(ms, 0.5):.1f} ms, p99 {quantile(ms, 0.99):.1f} ms, "
            f"max {max(ms):.1f} ms"
            + (
                f"; poll cycle {lat.cycle_ms:.1f} ms (upper-bound resolution)"
                if lat.cycle_ms
                else ""
            )
            + f"\n    cpu: {cpu}"
            + (f"\n    {lat.delivered.describe(lat.committed)}" if lat.delivered else "")
        )
