"""The hub's live feed during a simulator step, for bench/_sim_rate.py: which messages
showed committed, and when.

A WebSocket subscription to every device's readings (the server's frames unbatched:
``TELEHUB_WS_FRAME_INTERVAL_SECONDS=0``). A message is known by (device, ts); the
simulator stamps ts as it takes the message up, just before hand-over (unless its
window is full), so "seen minus ts" is hand-over to commit plus the hop to this process.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from telehub.client.ws import subscribe_message, ws_url

SETTLE_S = 20.0  # at most, after a step, for its last MQTT messages to show committed
QUIET_S = 1.0  # a feed this long without readings has nothing more to show


class Commits:
    """The hub's live feed during one step: when each message (device, ts) showed committed.

    Only messages stamped after ``since`` count: a previous step's stragglers do not.
    """

    def __init__(self, since: float) -> None:
        self.since = since
        self.seen: dict[tuple[str, str], tuple[float, float]] = {}  # latency, monotonic
        self.old: set[tuple[str, str]] = set()
        self.gaps = 0
        self.ready = asyncio.Event()
        self.last = time.monotonic()

    async def watch(self, base: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.ws_connect(ws_url(base), max_msg_size=0) as ws,
        ):
            await ws.send_str(orjson.dumps(subscribe_message(None, None)).decode())
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                message = orjson.loads(frame.data)
                kind = message.get("type")
                if kind == "readings":
                    self._readings(message["readings"])
                elif kind == "subscribed":
                    self.ready.set()
                elif kind == "gap":
                    self.gaps += 1
                elif kind == "error":
                    raise RuntimeError(f"live feed: {message}")

    def _readings(self, readings: list[dict[str, Any]]) -> None:
        wall, self.last = time.time(), time.monotonic()
        for r in readings:
            key = (r["device_id"], r["ts"])
            if key in self.seen or key in self.old:
                continue
            stamped = datetime.fromisoformat(key[1]).timestamp()  # just before hand-over
            if stamped < self.since:
                self.old.add(key)
            else:
                self.seen[key] = (wall - stamped, self.last)

    async def settle(self, acknowledged: int) -> None:
        """Until every acknowledged message showed, or the feed has been quiet a while."""
        deadline = time.monotonic() + SETTLE_S
        while len(self.seen) < acknowledged and time.monotonic() < deadline:
            if time.monotonic() - self.last > QUIET_S:
                return
            await asyncio.sleep(0.05)
