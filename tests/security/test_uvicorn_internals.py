"""The uvicorn internals telehub's HTTP protocol builds on are still there, as it uses them.

telehub/api/http_protocol.py extends uvicorn's httptools protocol (deadlines for a
request's head and body, a connection cap): it overrides a few of its methods and
reads a few attributes of its request cycle. A uvicorn release that renames or
reshapes them would silently bring back connections held for good; this fails
first, naming what changed. pyproject.toml pins uvicorn to the release checked here.
"""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.http import auto
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from telehub.api.http_protocol import ClientLimits, GuardedHttpProtocol, HttpConfig


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def source(function: object) -> str:
    return inspect.getsource(function)  # type: ignore[arg-type]


def test_uvicorn_is_the_release_the_protocol_was_written_for() -> None:
    assert uvicorn.__version__.startswith("0.54."), uvicorn.__version__


def test_httptools_is_the_protocol_uvicorn_would_pick_itself() -> None:
    """The override changes deadlines and counting, not the parser."""
    assert auto.AutoHTTPProtocol is HttpToolsProtocol


def test_a_config_of_ours_serves_through_the_guarded_protocol() -> None:
    async def app(scope: object, receive: object, send: object) -> None: ...

    config = HttpConfig(app, limits=ClientLimits(1.0, 1.0, 10))
    config.load()
    assert config.http_protocol_class is GuardedHttpProtocol


def test_the_server_makes_each_protocol_with_the_lifespan_state() -> None:
    """The hub's Metrics reach the protocol through the lifespan state (app_state)."""
    assert parameters(HttpToolsProtocol.__init__) == [
        "self",
        "config",
        "server_state",
        "app_state",
        "_loop",
    ]
    assert "app_state=self.lifespan.state" in source(uvicorn.Server.startup)


def test_the_methods_overridden_keep_their_shape() -> None:
    assert parameters(HttpToolsProtocol.connection_made) == ["self", "transport"]
    assert parameters(HttpToolsProtocol.connection_lost) == ["self", "exc"]
    assert parameters(HttpToolsProtocol.data_received) == ["self", "data"]
    for callback in (
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
        "handle_websocket_upgrade",
    ):
        assert parameters(getattr(HttpToolsProtocol, callback)) == ["self"], callback


def test_they_are_still_called_where_the_protocol_expects() -> None:
    # An upgrade leaves the protocol through handle_websocket_upgrade (uncounted then).
    assert "self.handle_websocket_upgrade()" in source(HttpToolsProtocol.data_received)
    # A finished response comes back through on_response_complete (waiting again).
    headers_complete = source(HttpToolsProtocol.on_headers_complete)
    assert "on_response=self.on_response_complete" in headers_complete
    assert "self.pipeline.appendleft((self.cycle, app))" in headers_complete
    assert "self.pipeline.pop()" in source(HttpToolsProtocol.on_response_complete)


def test_the_request_cycle_still_has_what_a_body_deadline_uses() -> None:
    """A body cut off by its deadline marks the cycle disconnected and wakes its
    receive: the app gets http.disconnect and whatever it then sends is dropped."""
    init = source(RequestResponseCycle.__init__)
    for attribute in ("disconnected", "response_started", "response_complete"):
        assert f"self.{attribute} = False" in init, attribute
    assert "self.message_event = message_event" in init
    receive = source(RequestResponseCycle.receive)
    assert "await self.message_event.wait()" in receive
    gone = "if self.disconnected or self.response_complete:\n"
    assert gone + '            return {"type": "http.disconnect"}' in receive
    assert "if self.disconnected:\n            return" in source(RequestResponseCycle.send)
