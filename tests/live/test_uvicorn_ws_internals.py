"""The uvicorn WebSocket internals telehub/api/ws_protocol.py builds on are still there.

LeanWebSocketProtocol subclasses uvicorn's sans-I/O WebSocket protocol: it
swaps the per-connection ``queue`` for a lighter one with only the methods
uvicorn calls, drops the handshake's ``request``/``response`` once the accept
is sent, and takes over ``keepalive_timeout``, reading ``close_sent`` and
``handshake_complete``. A uvicorn release that calls another queue method,
reads the handshake objects later or times out pings another way would break
idle dashboards or leak them; this fails first, naming the module to revisit.
(tests/security/test_uvicorn_internals.py covers the HTTP protocol.)
"""

from __future__ import annotations

import inspect
import re

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets import websockets_sansio_impl
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from telehub.api import ws_protocol
from telehub.api.ws_protocol import LeanWebSocketProtocol, PeerDropped
from tests.support.pins import assert_pinned

WS = "telehub/api/ws_protocol.py (LeanWebSocketProtocol)"
SOURCE = inspect.getsource(websockets_sansio_impl)


def methods_using(attribute: str) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(WebSocketsSansIOProtocol, inspect.isfunction)
        if member.__module__ == websockets_sansio_impl.__name__
        and f"self.{attribute}" in inspect.getsource(member)
    }


def test_uvicorn_is_the_release_the_websocket_protocol_was_written_for() -> None:
    assert_pinned("uvicorn", "0.54", revisit=WS)


def test_it_extends_uvicorns_sansio_protocol_and_its_disconnect_error() -> None:
    assert LeanWebSocketProtocol.__mro__[1] is WebSocketsSansIOProtocol, WS
    assert issubclass(PeerDropped, ClientDisconnected), WS


def test_the_queue_is_used_only_through_what_the_light_queue_has() -> None:
    used = set(re.findall(r"self\.queue\.(\w+)", SOURCE))
    light = {name for name in vars(ws_protocol._LightQueue) if not name.startswith("_")}
    assert used <= light, f"uvicorn now calls queue.{sorted(used - light)}: revisit {WS}"
    assert "self.queue: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()" in inspect.getsource(
        WebSocketsSansIOProtocol.__init__
    ), f"revisit {WS}"


def test_the_handshake_objects_are_read_only_until_the_accept() -> None:
    for attribute in ("request", "response"):
        users = methods_using(attribute)
        assert "handle_connect" in users, f"revisit {WS}"
        assert users <= {"handle_connect", "send"}, (
            f"uvicorn reads self.{attribute} in {sorted(users)}: revisit {WS}"
        )
    send = inspect.getsource(WebSocketsSansIOProtocol.send)
    accept = send.index('if message["type"] == "websocket.accept":')
    assert send.index("if not self.handshake_complete") < accept < send.index("self.response"), (
        f"revisit {WS}"
    )


def test_an_unanswered_ping_goes_through_keepalive_timeout() -> None:
    assert list(inspect.signature(WebSocketsSansIOProtocol.keepalive_timeout).parameters) == [
        "self"
    ], f"revisit {WS}"
    assert "call_later(self.ping_timeout, self.keepalive_timeout)" in SOURCE, f"revisit {WS}"
    timeout = inspect.getsource(WebSocketsSansIOProtocol.keepalive_timeout)
    assert "self.close_sent = True" in timeout, f"revisit {WS}"
    assert "self.transport.close()" in timeout, f"revisit {WS}"
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    for flag in ("self.handshake_complete = False", "self.close_sent = False"):
        assert flag in init, f"revisit {WS}"
