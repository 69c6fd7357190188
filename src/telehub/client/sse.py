"""Server-Sent Events over requests: a decoder to the WHATWG rules and a resuming reader.

Written here rather than taken from a package because resuming is the point:
``follow_events`` reconnects after a dropped connection with ``Last-Event-ID``
(waiting what the server's ``retry:`` said), so the caller sees each event
once even across server restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import requests

from telehub.client.errors import ApiError, api_error
from telehub.client.tls import Verify, requests_verify


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> object:
        return orjson.loads(self.data)


class SseDecoder:
    """Feed bytes in any chunking; get whole events out. Also keeps the last id and retry."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n split across chunks
        self._pending_cr = False
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, after = cut
            if after == end + 1 == len(self._buffer) and self._buffer[end : end + 1] == b"\r":
                self._pending_cr = True  # a lone \r so far; a \n may start the next chunk
            line = self._buffer[:end].decode("utf-8", "replace")
            self._buffer = self._buffer[after:]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data), id=self.last_id)


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first line ends and the next begins, for \\n, \\r\\n or a lone \\r."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr < 0 or (0 <= lf < cr):
        return None if lf < 0 else (lf, lf + 1)
    if buffer[cr + 1 : cr + 2] == b"\n":
        return cr, cr + 2
    return cr, cr + 1


def follow_events(
    url: str,
    *,
    token: str,
    types: list[str] | None = None,
    last_event_id: str | None = None,
    timeout: float = 60.0,
    on_reconnect: Callable[[Exception], None] | None = None,
    verify: Verify = True,
) -> Iterator[ServerSentEvent]:
    """Events of ``GET {url}/api/v1/events`` for ever, resuming after every disconnect.

    Raises ApiError for an answer that retrying cannot fix (401, 403, 422), and
    requests' ConnectionError if the first connection fails; a 5xx answer or a
    connection lost later is retried.
    ``timeout`` is the read timeout: the server sends a keep-alive well within it.
    ``verify`` checks an https:// server's certificate (:mod:`telehub.client.tls`).
    """
    decoder = SseDecoder()
    decoder.last_id = last_event_id
    connected = False
    params = {"types": ",".join(types)} if types else {}
    checked = requests_verify(verify)
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        session.headers["Accept"] = "text/event-stream"
        while True:
            headers = {"Last-Event-ID": decoder.last_id} if decoder.last_id else {}
            try:
                with session.get(
                    f"{url.rstrip('/')}/api/v1/events",
                    params=params,
                    headers=headers,
                    stream=True,
                    timeout=(10, timeout),
                    verify=checked,
                ) as response:
                    _check(response)
                    connected = True
                    for chunk in response.iter_content(chunk_size=None):
                        yield from decoder.feed(chunk)
                problem: Exception = ConnectionError("the server ended the stream")
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not connected:
                    raise  # never reached it: a wrong URL, not a dropped connection
                problem = exc
            except ApiError as exc:
                if exc.status < 500:
                    raise
                problem = exc
            if on_reconnect is not None:
                on_reconnect(problem)
            time.sleep((decoder.retry_ms or 3000) / 1000)


def _check(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:200] or str(response.reason)}
    raise api_error(response.status_code, body)
