"""The three ways bench/clients.py posts one reading at a time, in the benchmark process.

Each poster sends the posts ``seqs`` of one device, post ``i`` carrying ``{"t": i}`` at
``Stamps.at(i)`` (one millisecond apart, so every reading is new), and tallies what the
server answered. An exception (no answer, a problem response) stops the benchmark: the
figures of a phase that lost posts would mean nothing. Over HTTPS each checks the
server's certificate against ``Target.verify`` (the bench's own CA file), as a user of a
self-signed hub does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from _harness import run_async
from _load import quantile
from telehub.api.schemas import IngestAccepted
from telehub.client.http_async import AsyncClient
from telehub.client.http_client import Client

METRIC = "t"
TIMEOUT_S = 30.0

KINDS = {
    "sync": "Client, sequential (one Session, keep-alive)",
    "async": "AsyncClient, {concurrency} concurrent",
    "plain": "requests.post, sequential (no Session: a connection per post)",
}


@dataclass(frozen=True)
class Stamps:
    """Post ``i`` of a device is stamped ``base + i`` ms: distinct, in the past, never late."""

    base: datetime

    @classmethod
    def hour_ago(cls) -> Stamps:
        now = datetime.now(UTC).replace(microsecond=0)
        return cls(now - timedelta(hours=1))

    def at(self, i: int) -> datetime:
        return self.base + timedelta(milliseconds=i)


@dataclass
class Tally:
    """What one phase sent and what came back: ``acked`` counts ``accepted == 1``."""

    posts: int = 0
    acked: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    odd: Counter[str] = field(default_factory=Counter)  # answers other than 1 accepted

    @property
    def rate(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0

    def p50_ms(self) -> float:
        return 1000 * quantile(self.latencies, 0.5) if self.latencies else 0.0

    def record(self, accepted: int, duplicates: int, started: float) -> None:
        self.latencies.append(time.perf_counter() - started)
        self.posts += 1
        if accepted == 1 and duplicates == 0:
            self.acked += 1
        else:
            self.odd[f"accepted={accepted} duplicates={duplicates}"] += 1

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.posts + other.posts,
            self.acked + other.acked,
            self.seconds + other.seconds,
            self.latencies + other.latencies,
            self.odd + other.odd,
        )


@dataclass(frozen=True)
class Target:
    """The server and the device every post of a phase goes to; ``verify`` is requests'."""

    base: str
    device_id: str
    token: str
    verify: bool | str = True

    @property
    def url(self) -> str:
        return f"{self.base}/api/v1/devices/{self.device_id}/telemetry"


def post_sync(target: Target, seqs: range, stamps: Stamps) -> Tally:
    """``Client.send_telemetry``, one post after the other, on the client's one Session."""
    tally = Tally()
    with Client(target.base, token=target.token, timeout=TIMEOUT_S, verify=target.verify) as client:
        t0 = time.perf_counter()
        for i in seqs:
            started = time.perf_counter()
            res = client.send_telemetry(target.device_id, {METRIC: float(i)}, ts=stamps.at(i))
            tally.record(res.accepted, res.duplicates, started)
        tally.seconds = time.perf_counter() - t0
    return tally


def post_plain(target: Target, seqs: range, stamps: Stamps) -> Tally:
    """``requests.post`` with the SDK's body and header: a new Session, so a new
    connection (over HTTPS: a full TLS handshake), for every post, as a script
    without a Session does."""
    tally = Tally()
    headers = {"Authorization": f"Bearer {target.token}"}
    url = target.url
    t0 = time.perf_counter()
    for i in seqs:
        body = {"ts": stamps.at(i).isoformat(), "values": {METRIC: float(i)}}
        started = time.perf_counter()
        resp = requests.post(
            url, json=body, headers=headers, timeout=TIMEOUT_S, verify=target.verify
        )
        if resp.status_code != 202:
            raise RuntimeError(f"requests.post: HTTP {resp.status_code}: {resp.text[:300]}")
        res = IngestAccepted.model_validate(resp.json())
        tally.record(res.accepted, res.duplicates, started)
    tally.seconds = time.perf_counter() - t0
    return tally


async def post_async(target: Target, seqs: range, stamps: Stamps, concurrency: int) -> Tally:
    """``AsyncClient.send_telemetry`` from ``concurrency`` tasks taking the next post from
    one shared iterator, so exactly ``concurrency`` posts are in flight until the end;
    the client's own semaphore has the same bound."""
    tally = Tally()
    todo = iter(seqs)  # shared: asyncio runs one task at a time, each post is taken once

    async with AsyncClient(
        target.base,
        token=target.token,
        timeout=TIMEOUT_S,
        concurrency=concurrency,
        verify=target.verify,
    ) as client:

        async def poster() -> None:
            for i in todo:
                started = time.perf_counter()
                res = await client.send_telemetry(
                    target.device_id, {METRIC: float(i)}, ts=stamps.at(i)
                )
                tally.record(res.accepted, res.duplicates, started)

        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for k in range(concurrency):
                group.create_task(poster(), name=f"poster-{k}")
        tally.seconds = time.perf_counter() - t0
    return tally


def post(kind: str, target: Target, seqs: range, stamps: Stamps, concurrency: int) -> Tally:
    """Post ``seqs`` the way ``kind`` (a key of KINDS) does."""
    if kind == "sync":
        return post_sync(target, seqs, stamps)
    if kind == "plain":
        return post_plain(target, seqs, stamps)
    tally: Tally = run_async(post_async(target, seqs, stamps, concurrency))
    return tally


def count_stored(target: Target, admin: str, stamps: Stamps, seqs: range) -> int:
    """Readings the server holds for the target's device at the stamps of ``seqs``, counted
    by the server itself (``agg=count`` in day buckets over exactly that range)."""
    device_id = target.device_id
    with Client(target.base, token=admin, timeout=TIMEOUT_S, verify=target.verify) as client:
        series = client.query(
            device_id,
            metrics=[METRIC],
            start=stamps.at(seqs.start),
            end=stamps.at(seqs.stop),
            interval="1d",
            agg="count",
        )
    return round(sum(p.value for p in series.series.get(METRIC, [])))
