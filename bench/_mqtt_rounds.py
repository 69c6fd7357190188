"""One round of the MQTT benchmark: the same publishers and messages to the bridge's
topics (timed until the last reading is committed) or to the bare broker's (timed
until mosquitto_sub has the last message)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from _mqtt import (
    HUB_TOPIC,
    RAW_TOPIC,
    check_exit,
    line,
    publisher,
    received,
    subscriber,
    wait_exit,
    wait_sub,
)
from _mqtt_run import QUIET_S, Measure, Run


def _files(run: Run, first: int, per_device: int) -> list[Path]:
    data = b"".join(line(seq) for seq in range(first, first + per_device))
    paths = []
    for k in range(len(run.devices)):
        path = run.backend.workdir / f"pub-{k}.txt"
        path.write_bytes(data)  # the same seqs for every device: ts differ by device only
        paths.append(path)
    return paths


def _publish_files(
    run: Run, qos: int, topic: str, paths: list[Path]
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for dev, path in zip(run.devices, paths, strict=True):
        with path.open("rb") as stdin:
            cid = run.client_id("pub")
            procs.append(publisher(run.children, run.broker, cid, topic.format(dev), qos, stdin))
    return procs


async def hub_round(run: Run, qos: int, per_device: int) -> Measure:
    first = run.take(per_device)
    paths = _files(run, first, per_device)
    expected = per_device * len(run.devices)
    run.settle()
    run.reset_subscribers()
    before = run.snap()
    t0 = time.time()
    pubs = _publish_files(run, qos, HUB_TOPIC, paths)
    await wait_exit(pubs)
    publish_s = time.time() - t0
    check_exit(pubs, "mosquitto_pub")
    got, end = await _wait_committed(run, first, per_device, QUIET_S[qos])
    run.charge(f"bridge q{qos}", before)
    delivered = await run.delivered(got)
    if delivered is None:
        return Measure(expected, got, end - t0, publish_s)
    # The same round until the last subscriber had it all: what the fan-out cost in all.
    run.charge(f"fanout q{qos}", before)
    catch_up = delivered.last - end if delivered.last else 0.0
    return Measure(expected, got, end - t0, publish_s, delivered, catch_up)


async def _wait_committed(run: Run, first: int, per_device: int, quiet: float) -> tuple[int, float]:
    """(readings committed, when the last was first seen), polled from outside."""
    last, end = first + per_device - 1, first + per_device
    expected = per_device * len(run.devices)
    got, changed_at, next_count = 0, time.time(), 0.0
    while True:
        if await run.probe.present(last) == len(run.devices):
            n = await run.probe.count(first, end)
            if n == expected:
                return n, time.time()
        now = time.time()
        if now >= next_count:  # slower exact count: progress, and loss at QoS 0
            n = await run.probe.count(first, end)
            now = time.time()
            if n != got:
                got, changed_at = n, now
            if n == expected:
                return n, now
            if now - changed_at > quiet:
                return got, changed_at
            next_count = now + 0.25
        await asyncio.sleep(0.01)


async def raw_round(run: Run, qos: int, per_device: int) -> Measure:
    first = run.take(per_device)
    paths = _files(run, first, per_device)
    expected = per_device * len(run.devices)
    out = run.backend.workdir / "sub.txt"
    with out.open("wb") as sink:
        sub = subscriber(run.children, run.broker, run.client_id("sub"), qos, expected, sink)
    run.settle()
    before = run.snap()
    t0 = time.time()
    pubs = _publish_files(run, qos, RAW_TOPIC, paths)
    await wait_exit(pubs)
    publish_s = time.time() - t0
    check_exit(pubs, "mosquitto_pub")
    await wait_sub(sub, out, QUIET_S[qos])
    run.charge(f"raw q{qos}", before)
    rows = received(out)
    end = rows[-1][0] if rows else t0
    return Measure(expected, len(rows), end - t0, publish_s)
