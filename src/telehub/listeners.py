"""Listening sockets: bound up front, so a taken port is a one-line error naming its setting."""

from __future__ import annotations

import errno
import socket

from telehub.errors import ConfigError


def bind(host: str, port: int, *, setting: str, flag: str, hint: str = "") -> socket.socket:
    """Bind a listening socket now, so a taken port is a clear error naming its setting.

    ``hint`` is added to that error (another way out, say).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it a small response waits ~40 ms
    # for the client's delayed ACK (Nagle), capping a keep-alive client at ~25 req/s.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{host}:{port} is already in use; choose another port with {setting} or {flag}"
                + hint
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock
