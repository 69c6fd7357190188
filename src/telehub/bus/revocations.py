"""Revocations announced by any process, applied in this one.

One task per process (started with the hub) follows the bus's revocations
channel: each revoked credential leaves this process's auth cache, and its
live sessions here end. The bus is best-effort, so:

- when it says it lost messages (a Redis outage, an overflow), the whole
  cache goes and every live session's credential is looked up again;
- every ``recheck_seconds`` the API tokens of the live sessions are looked up
  (one query, and none while no session has one): a token deleted where this
  process's bus does not reach (``telehub token delete`` beside ``telehub
  serve`` on the memory bus) still ends its sessions within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telehub.bus.base import Bus
from telehub.bus.subscription import Channel
from telehub.core.auth import Authenticator
from telehub.domain.live import Revoked

log = logging.getLogger(__name__)

_BACKLOG = 10_000  # revocations waiting to be applied, at most


async def follow_revocations(bus: Bus, auth: Authenticator, *, recheck_seconds: float) -> None:
    """Apply revocations until cancelled; run it as a named task for the life of the hub."""
    loop = asyncio.get_running_loop()
    async with bus.subscribe([Channel.REVOCATIONS], backlog=_BACKLOG) as revocations:
        recheck_at = loop.time() + recheck_seconds
        devices_too = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(recheck_at):
                    await revocations.wait()
            delivery = revocations.take()
            if delivery is not None:
                for message in delivery.messages:
                    assert isinstance(message, Revoked)
                    auth.revoked(message)
                if delivery.lost:
                    log.info("revocations: the bus lost some; rechecking every live session")
                    auth.forget()
                    devices_too = True
            if devices_too or loop.time() >= recheck_at:
                try:
                    await auth.recheck(devices=devices_too)
                    devices_too = False
                except Exception as exc:  # the database is down: at the next turn
                    log.warning("revocations: cannot recheck live sessions (%s)", exc)
                recheck_at = loop.time() + recheck_seconds
