"""uvicorn's configuration from Settings, the same for ``serve``, ``api`` and tests."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import uvicorn

from telehub.api.http_protocol import ClientLimits, HttpConfig
from telehub.api.ws_protocol import LeanWebSocketProtocol
from telehub.config import Settings
from telehub.errors import ConfigError


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """WebSocket limits, pings and compression, HTTPS and the access log come from
    Settings; the rest from ``overrides``.

    Pings are uvicorn's (protocol-level): a peer that stops answering is dropped
    after ``ws_ping_interval_seconds + ws_ping_timeout_seconds``, and its
    subscription goes with it (counted in ``telehub_ws_dropped_total``; see
    LeanWebSocketProtocol.keepalive_timeout). Credentials in logged URLs are redacted by the filter
    ``create_app`` puts on uvicorn's loggers (telehub.api.log_redaction), whatever
    log configuration uvicorn applies. Raises ConfigError for a certificate or key that
    cannot be used (see :func:`tls_options`).

    HTTP goes through telehub.api.http_protocol: deadlines for a request's head and
    body, and a cap on the process's connections, from Settings too.
    """
    options: dict[str, Any] = {
        "log_level": "info",
        "access_log": settings.http_access_log,
        "timeout_graceful_shutdown": 10,
        "ws": LeanWebSocketProtocol,
        "ws_max_size": settings.ws_max_message_bytes,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "ws_per_message_deflate": settings.ws_compression,
    }
    limits = ClientLimits.from_settings(settings)
    return HttpConfig(app, limits=limits, **(options | tls_options(settings) | overrides))


def tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's ``ssl_certfile``/``ssl_keyfile`` when HTTPS is configured, else nothing.

    Both files are loaded here first, so a missing, unreadable or mismatched one is
    a one-line ConfigError naming its setting, before anything starts (uvicorn
    would raise OpenSSL's "PEM lib" from each worker, or prompt for the passphrase
    of an encrypted key).
    """
    cert, key = settings.http_tls_cert_file, settings.http_tls_key_file
    if cert is None or key is None:
        return {}
    for setting, path in (("CERT", cert), ("KEY", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"TELEHUB_HTTP_TLS_{setting}_FILE={path}: cannot read it: {exc.strerror}"
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise ConfigError(
            f"TELEHUB_HTTP_TLS_CERT_FILE={cert}: not a PEM certificate "
            "(-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise ConfigError(f"TELEHUB_HTTP_TLS_KEY_FILE={key}: {_key_problem(key, exc)}") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def _no_passphrase() -> bytes:
    return b""


def _key_problem(key: Path, exc: ssl.SSLError) -> str:
    if b"ENCRYPTED" in key.read_bytes():
        return "the key is encrypted; telehub needs it unencrypted (openssl pkey -in KEY -out NEW)"
    reason = exc.reason or "not a PEM private key"
    return f"not the unencrypted PEM private key of TELEHUB_HTTP_TLS_CERT_FILE ({reason})"


class Server(uvicorn.Server):
    """uvicorn's server, ending SSE streams as soon as shutdown starts.

    uvicorn waits (up to its graceful timeout) for every response to finish,
    and an SSE stream never does by itself; closing the feed's subscribers ends
    them, and their clients resume, with Last-Event-ID, on the next server.
    """

    def __init__(self, config: uvicorn.Config, *, app: Any) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        feed = getattr(self._app.state, "event_feed", None)
        if feed is not None:
            feed.close_subscribers()
        await super().shutdown(sockets)
