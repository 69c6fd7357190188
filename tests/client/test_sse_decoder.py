"""The SSE decoder against the WHATWG parsing rules, in any chunking."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from telehub.client.sse import ServerSentEvent, SseDecoder

STREAM = (
    b"retry: 2500\n\n"
    b": a comment\n"
    b'id: 1\nevent: presence\ndata: {"a": 1}\n\n'
    b"id: 2\r\nevent: commands\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"data:no space\rid: 3\r\r"
    b"event: ignored-without-data\n\n"
    b"id: 4\ndata: tail"  # not finished: no blank line yet
)
EXPECTED = [
    ServerSentEvent(event="presence", data='{"a": 1}', id="1"),
    ServerSentEvent(event="commands", data="line one\nline two", id="2"),
    ServerSentEvent(event="message", data="no space", id="3"),
]


def decode_in(chunks: list[bytes]) -> tuple[list[ServerSentEvent], SseDecoder]:
    decoder = SseDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events, decoder


def test_whole_stream() -> None:
    events, decoder = decode_in([STREAM])
    assert events == EXPECTED
    assert decoder.retry_ms == 2500
    assert decoder.last_id == "4"  # the id of an event still being received counts


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    events, decoder = decode_in(chunks)
    assert events == EXPECTED
    assert decoder.last_id == "4"


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    events, _ = decode_in([b"data: x\r", b"\n\r", b"\n"])
    assert events == [ServerSentEvent(event="message", data="x", id=None)]


def test_an_id_with_nul_is_ignored() -> None:
    events, decoder = decode_in([b"id: 5\n\nid: a\0b\ndata: y\n\n"])
    assert decoder.last_id == "5"
    assert events == [ServerSentEvent(event="message", data="y", id="5")]
