"""The live WebSocket from synchronous code: readings and presence as an iterator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from telehub.client.errors import (
    ApiError,
    Forbidden,
    LiveClosed,
    NotFound,
    Unauthorized,
    ValidationFailed,
    api_error,
)
from telehub.client.tls import Verify, ssl_context

_FINAL_CODES = {1008}  # retrying with the same token cannot help


def ws_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/api/v1/ws"
    return "ws://" + base.removeprefix("http://") + "/api/v1/ws"


def subscribe_message(devices: list[str] | None, metrics: list[str] | None) -> dict[str, Any]:
    """The one subscription a tail makes (the same for the sync and async clients)."""
    subscribe: dict[str, Any] = {"op": "subscribe", "id": "tail", "devices": devices or ["*"]}
    if metrics:
        subscribe["metrics"] = metrics
    return subscribe


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid-input": ValidationFailed,
    "unauthenticated": Unauthorized,
    "forbidden": Forbidden,
    "not-found": NotFound,
}


def live_error(message: dict[str, Any]) -> ApiError:
    """The typed error of an ``error`` reply (the same for the sync and async clients):
    its class by code, and the fields it names (``errors``), as for an HTTP problem."""
    code = message.get("code")
    errors = message.get("errors")
    cls = _BY_CODE.get(code, ApiError) if isinstance(code, str) else ApiError
    return cls(
        400,
        str(message.get("detail")),
        code if isinstance(code, str) else None,
        errors=errors if isinstance(errors, list) else None,
    )


def tail_readings(
    url: str,
    *,
    token: str,
    devices: list[str] | None = None,
    metrics: list[str] | None = None,
    open_timeout: float = 10.0,
    verify: Verify = True,
) -> Iterator[dict[str, Any]]:
    """Every message of one subscription (``readings``, ``presence``, ``command_status``,
    ``gap``) as the server sends it, until the server closes the socket.

    Raises LiveClosed when the server refuses (1008: token or scope), ApiError when
    the upgrade itself is refused, and ConnectionClosed for any other close.
    ``verify`` checks a wss:// server's certificate (:mod:`telehub.client.tls`).
    """
    subscribe = subscribe_message(devices, metrics)
    target = ws_url(url)
    context = ssl_context(verify) if target.startswith("wss://") else None
    try:
        socket = connect(
            target,
            ssl=context,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=open_timeout,
            max_size=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise api_error(status, {"detail": "the server refused the WebSocket"}) from None
    with socket:
        try:
            socket.send(orjson.dumps(subscribe).decode())
            for raw in socket:
                message: dict[str, Any] = orjson.loads(raw)
                if message.get("type") == "error":
                    raise live_error(message)
                if message.get("type") != "subscribed":
                    yield message
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in _FINAL_CODES:
                raise LiveClosed(exc.rcvd.code, exc.rcvd.reason) from None
            raise
