"""PostgreSQL connections that give up: deadlines, and a socket that notices a dead peer.

A silent network partition (a dead link, a firewall dropping packets, a NAT
that forgot the connection) neither answers nor resets: without deadlines
every request waits for the whole outage. So every connection telehub opens,
the pool's and the batch writer's, is made here:

- the connection itself has ``connect_timeout``;
- each statement has ``command_timeout`` (asyncpg's default per-call timeout);
  PostgreSQL's own ``statement_timeout`` is no help, the server never sees a
  statement lost on the way;
- the socket has TCP keepalive and ``TCP_USER_TIMEOUT``, so the kernel closes
  a connection whose peer stopped acknowledging, idle or not (libpq's
  ``keepalives*`` and ``tcp_user_timeout``; asyncpg has no such options,
  MagicStack/asyncpg#606).
"""

from __future__ import annotations

import math
import socket
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from telehub.errors import StorageTimeout, StorageUnavailable


async def connect(
    dsn: str,
    *,
    server_settings: dict[str, str],
    connect_timeout: float,
    command_timeout: float | None,
    dead_after: float,
) -> Any:
    """An asyncpg connection, or StorageUnavailable (StorageTimeout past ``connect_timeout``).

    ``dead_after``: seconds a peer may leave data unacknowledged, or stay silent
    to keepalive probes, before the kernel closes the connection.
    """
    try:
        conn = await asyncpg.connect(
            dsn,
            server_settings=server_settings,
            timeout=connect_timeout,
            command_timeout=command_timeout,
        )
    except TimeoutError as exc:  # before OSError: a TimeoutError is one
        raise StorageTimeout(
            f"the database did not answer within {connect_timeout:g} s (connecting)"
        ) from exc
    except (OSError, asyncpg.PostgresConnectionError) as exc:
        raise StorageUnavailable(f"the database is unreachable ({exc!r})") from exc
    keep_alive(conn, idle=connect_timeout, dead_after=dead_after)
    return conn


def keep_alive(conn: Any, *, idle: float, dead_after: float) -> None:
    """Probe ``conn``'s socket after ``idle`` quiet seconds; close it ``dead_after`` unanswered.

    Nothing to do on a Unix socket (a local server cannot be partitioned away).
    """
    transport = getattr(conn, "_transport", None)  # no public accessor (asyncpg#606)
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    probe = max(1, math.ceil(idle))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS has TCP_KEEPALIVE for the idle time
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, probe)
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, probe)
        count = max(1, math.ceil(dead_after / probe))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux only
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(dead_after * 1000))
