"""A refused or failed request is one line on stderr and its exit code, never a traceback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from telehub.cli.exit_codes import Exit
from telehub.domain.devices import Scope
from telehub.listeners import bind
from tests.cli.conftest import Api, failed, telehub
from tests.live.support import LiveServer

UNKNOWN = "telehub: 404 not-found: device 'nope' does not exist"


@pytest.mark.parametrize(
    "args",
    [
        ["devices", "show", "nope"],
        ["devices", "update", "nope", "--name", "x"],
        ["devices", "delete", "nope", "--yes"],
        ["send", "nope", "t=1"],
        ["query", "nope"],
        ["latest", "nope"],
        ["command", "send", "nope", "reboot"],
    ],
)
async def test_an_unknown_device_is_a_404_line(api: Api, args: list[str]) -> None:
    result = await api(*args)
    assert failed(result, Exit.FAILED) == UNKNOWN
    assert result.stdout == ""


async def test_a_422_names_the_offending_field(api: Api) -> None:
    line = failed(await api("devices", "create", "--name", ""), Exit.FAILED)
    assert line == (
        "telehub: 422 invalid-input: the request is invalid "
        "(name: String should have at least 1 character)"
    )


async def test_a_device_id_that_is_no_slug_never_reaches_a_url(api: Api) -> None:
    # "../tokens/x" in a path would be another endpoint; it is refused before any request.
    result = await api("devices", "delete", "../tokens/x", "--yes")
    assert result.exit_code == 2
    assert "letters, digits" in result.stderr


async def test_a_bad_token_is_a_401_line(api: Api) -> None:
    line = failed(await api("devices", "list", token="tha_wrong"), Exit.AUTH)
    assert line.startswith("telehub: 401 unauthenticated: ")


async def test_a_read_token_cannot_create(api: Api, server: LiveServer) -> None:
    reader = await server.token(Scope.READ)
    line = failed(await api("devices", "create", "dev-1", token=reader), Exit.AUTH)
    assert line.startswith("telehub: 403 forbidden: ")


async def test_no_token_at_all_says_where_one_comes_from(server: LiveServer) -> None:
    line = failed(await telehub("latest", "dev-1", "--url", server.base), Exit.AUTH)
    assert line == (
        f"telehub: no token for {server.base}: give --token, set TELEHUB_TOKEN or run "
        f"`telehub login --url {server.base}`"
    )


async def test_no_server_listening_is_a_clear_line() -> None:
    sock = bind("127.0.0.1", 0, setting="(test)", flag="(test)")
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    result = await telehub("devices", "list", "--url", f"http://127.0.0.1:{port}", "--token", "x")

    assert failed(result, Exit.UNREACHABLE) == (
        f"telehub: cannot reach http://127.0.0.1:{port}: Connection refused"
    )


async def test_a_url_without_a_scheme_is_refused() -> None:
    line = failed(await telehub("devices", "list", "--url", "localhost:8000"), Exit.USAGE)
    assert line == "telehub: the URL must start with http:// or https:// (got 'localhost:8000')"


class _NotTelehub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>a router's login page</html>")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_telehub() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotTelehub)
    thread = threading.Thread(target=httpd.serve_forever, name="not-telehub")
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


async def test_a_server_that_is_not_telehub_is_one_line(not_telehub: str) -> None:
    line = failed(
        await telehub("devices", "list", "--url", not_telehub, "--token", "x"), Exit.UNREACHABLE
    )
    assert line.startswith(f"telehub: {not_telehub} did not answer like a telehub API: ")
