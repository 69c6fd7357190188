"""The load process: paced telemetry POSTs (WebSocket phases), bulk commands (SSE phase).

Bulk commands: ``bulk`` sends them back to back (how fast telehub makes
events), ``paced`` on a schedule (the SSE phase's offered load): one bulk
command to all of ``ids`` every ``len(ids) / rate`` s, whether or not the one
before was answered, so telehub and the bare server are fed the same way. The
loader returns the monotonic time each was answered (202).

Telemetry: POST number ``seq`` goes to device ``seq % devices`` at
``start + seq / post_rate``, one message ``{"ts": ..., "values": {"m0": seq,
"m1": seq, ...}}``: every reading's value is its POST's number, so a client can
tell which POST a delivered reading came from. The loader notes the monotonic
time each 202 answer was read; that is where a reading's delivery latency
starts (the server publishes a commit to the live bus as it answers, so a
frame can beat the 202 to the client by a little: a negative latency).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing.connection
import time
from array import array
from typing import Any

import aiohttp
import orjson

from _fanout_proc import Command, serve_commands

DAY_MS = 86_400_000


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=120),
    )


class Loader:
    def __init__(self) -> None:
        # Reading ts = a day ago + the POST number in ms: unique, never "in the future".
        self._base_ms = int(time.time() * 1000) - DAY_MS

    async def __call__(self, command: Command) -> Any:
        match command:
            case ("telemetry", str(base), list(devs), float(rate), float(secs), int(per), int(n)):
                return await self._telemetry(base, devs, rate, secs, per, n)
            case ("bulk", str(base), str(admin), list(ids), int(posts), int(parallel)):
                return await self._bulk(base, admin, ids, posts, parallel)
            case ("paced", str(base), str(admin), list(ids), float(rate), float(secs)):
                return await self._paced(base, admin, ids, rate, secs)
            case ("exit",):
                return None
        raise ValueError(f"unknown command {command!r}")

    async def _telemetry(
        self,
        base: str,
        devices: list[tuple[str, str]],
        rate: float,
        seconds: float,
        per_post: int,
        first: int,
    ) -> dict[str, Any]:
        """``rate`` readings/s for ``seconds`` s, ``per_post`` readings a POST."""
        post_rate = rate / per_post
        posts = round(post_rate * seconds)
        answers = array("d", [float(first)] + [math.nan] * posts)
        metrics = [f"m{k}" for k in range(per_post)]
        latencies: list[float] = []
        errors: list[str] = []
        accepted = 0

        async def post(session: aiohttp.ClientSession, i: int) -> None:
            nonlocal accepted
            seq = first + i
            device, token = devices[seq % len(devices)]
            value = float(seq)
            body = orjson.dumps(
                {"ts": self._base_ms + seq, "values": dict.fromkeys(metrics, value)}
            )
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            sent = time.monotonic()
            url = f"{base}/api/v1/devices/{device}/telemetry"
            async with session.post(url, data=body, headers=headers) as resp:
                text = await resp.read()
            answered = time.monotonic()
            if resp.status != 202:
                errors.append(f"HTTP {resp.status}: {text[:200].decode(errors='replace')}")
                return
            answers[i + 1] = answered
            accepted += orjson.loads(text)["accepted"]
            latencies.append(answered - sent)

        async with _session(len(devices)) as session:
            start = time.monotonic() + 0.02
            tasks = []
            for i in range(posts):
                pause = start + i / post_rate - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                tasks.append(asyncio.create_task(post(session, i)))
            await asyncio.gather(*tasks)
        latencies.sort()
        return {
            "posts": posts,
            "readings": accepted,
            "start": start,
            "last_answer": max((t for t in answers[1:] if t == t), default=start),
            "post_p50": latencies[len(latencies) // 2] if latencies else math.nan,
            "post_p99": latencies[int(len(latencies) * 0.99)] if latencies else math.nan,
            "errors": errors[:3],
            "error_count": len(errors),
            "answers": answers.tobytes(),
            "next": first + posts,
        }

    async def _bulk(
        self, base: str, admin: str, ids: list[str], posts: int, parallel: int
    ) -> dict[str, Any]:
        """``posts`` bulk commands to ``ids`` back to back, ``parallel`` in flight."""
        body = orjson.dumps({"devices": ids, "name": "reboot"})
        headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        errors: list[str] = []
        done = 0
        left = posts

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal done, left
            while left > 0:
                left -= 1
                async with session.post(f"{base}/api/v1/commands", data=body, headers=headers) as r:
                    text = await r.read()
                if r.status != 202:
                    errors.append(f"HTTP {r.status}: {text[:200].decode(errors='replace')}")
                else:
                    done += 1

        async with _session(parallel) as session:
            start = time.monotonic()
            await asyncio.gather(*(worker(session) for _ in range(parallel)))
            end = time.monotonic()
        return {
            "events": done * len(ids),
            "start": start,
            "last_answer": end,
            "errors": errors[:3],
            "error_count": len(errors),
        }

    async def _paced(
        self, base: str, admin: str, ids: list[str], rate: float, seconds: float
    ) -> dict[str, Any]:
        """A bulk command to ``ids`` every ``len(ids) / rate`` s for ``seconds`` s."""
        interval = len(ids) / rate
        posts = max(1, round(seconds / interval))
        body = orjson.dumps({"devices": ids, "name": "reboot"})
        headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        answers = array("d", [math.nan] * posts)
        took: list[float] = []
        errors: list[str] = []

        async def post(session: aiohttp.ClientSession, i: int) -> None:
            sent = time.monotonic()
            async with session.post(f"{base}/api/v1/commands", data=body, headers=headers) as r:
                text = await r.read()
            if r.status != 202:
                errors.append(f"HTTP {r.status}: {text[:200].decode(errors='replace')}")
                return
            answers[i] = time.monotonic()
            took.append(answers[i] - sent)

        async with _session(16) as session:
            start = time.monotonic() + 0.02
            tasks = []
            for i in range(posts):
                pause = start + i * interval - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                tasks.append(asyncio.create_task(post(session, i)))
            await asyncio.gather(*tasks)
        done = sorted(t for t in answers if t == t)  # answer order: the order of the commits
        took.sort()
        return {
            "posts": posts,
            "events": len(done) * len(ids),
            "start": start,
            "last_answer": done[-1] if done else start,
            "slip": (done[-1] if done else start) - (start + (posts - 1) * interval),
            "post_p50": took[len(took) // 2] if took else math.nan,
            "post_max": took[-1] if took else math.nan,
            "answers": array("d", done).tobytes(),
            "errors": errors[:3],
            "error_count": len(errors),
        }


def load_worker(conn: multiprocessing.connection.Connection) -> None:
    serve_commands(conn, Loader)
