"""Bounded inputs: device attributes have limits, errors quote only an excerpt of
the input, and a telemetry body over the size limit is recorded like any bad input."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from telehub.domain.devices import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
)
from telehub.domain.telemetry import ECHO_CHARS, excerpt
from tests.api.conftest import Api, at, url

DEVICES = "/api/v1/devices"
MIB = 1024 * 1024


def string_of_json_size(size: int) -> str:
    """A string whose JSON form is exactly ``size`` bytes (its two quotes included)."""
    return "x" * (size - 2)


def longest_run(text: str, char: str) -> int:
    """The longest run of ``char`` in ``text``: how much of an input of only that was quoted."""
    return max((len(m) for m in re.findall(f"{re.escape(char)}+", text)), default=0)


# --- attribute limits --------------------------------------------------------------------

# Every limit at once, each exactly reached: the largest attributes accepted.
AT_THE_LIMITS: list[dict[str, Any]] = [
    {f"k{i}": i for i in range(MAX_ATTRIBUTES)},
    {"k" * MAX_ATTRIBUTE_KEY_CHARS: "v"},
    {"v": string_of_json_size(MAX_ATTRIBUTE_VALUE_BYTES)},
    # {"a":"…","b":"…"} is 15 bytes besides the two strings' characters.
    {
        "a": string_of_json_size(MAX_ATTRIBUTE_VALUE_BYTES),
        "b": "x" * (MAX_ATTRIBUTES_BYTES - 15 - (MAX_ATTRIBUTE_VALUE_BYTES - 2)),
    },
]

# Each one over one limit, and the pointer of its error.
OVER_THE_LIMITS: list[tuple[dict[str, Any], str]] = [
    ({f"k{i}": i for i in range(MAX_ATTRIBUTES + 1)}, "#/attributes"),
    (
        {"k" * (MAX_ATTRIBUTE_KEY_CHARS + 1): "v"},
        excerpt("#/attributes/" + "k" * (MAX_ATTRIBUTE_KEY_CHARS + 1)),
    ),
    ({"": "v"}, "#/attributes/"),
    ({"v": string_of_json_size(MAX_ATTRIBUTE_VALUE_BYTES + 1)}, "#/attributes/v"),
    ({"v": {"nested": ["é" * (MAX_ATTRIBUTE_VALUE_BYTES // 2)]}}, "#/attributes/v"),
    (
        {
            "a": string_of_json_size(MAX_ATTRIBUTE_VALUE_BYTES),
            "b": "x" * (MAX_ATTRIBUTES_BYTES - 15 - (MAX_ATTRIBUTE_VALUE_BYTES - 2) + 1),
        },
        "#/attributes",
    ),
]


@pytest.mark.parametrize("attributes", AT_THE_LIMITS, ids=["keys", "key", "value", "total"])
async def test_attributes_at_the_limits_are_kept(api: Api, attributes: dict[str, Any]) -> None:
    admin = api.auth(api.admin)

    created = await api.client.post(
        DEVICES, json={"id": "dev-1", "attributes": attributes}, headers=admin
    )
    patched = await api.client.patch(
        f"{DEVICES}/dev-1", json={"attributes": attributes}, headers=admin
    )

    assert created.status_code == 201, created.text[:500]
    assert patched.status_code == 200, patched.text[:500]
    assert (await api.client.get(f"{DEVICES}/dev-1", headers=admin)).json()[
        "attributes"
    ] == attributes


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    OVER_THE_LIMITS,
    ids=["keys", "key", "empty-key", "value", "unicode-value", "total"],
)
async def test_attributes_over_a_limit_are_422_naming_the_field(
    api: Api, attributes: dict[str, Any], pointer: str
) -> None:
    admin = api.auth(api.admin)
    await api.device("dev-1", site="north")

    created = await api.client.post(
        DEVICES, json={"id": "dev-2", "attributes": attributes}, headers=admin
    )
    patched = await api.client.patch(
        f"{DEVICES}/dev-1", json={"attributes": attributes}, headers=admin
    )

    for refused in (created, patched):
        assert [e["pointer"] for e in api.invalid(refused)] == [pointer]
    assert (await api.client.get(f"{DEVICES}/dev-2", headers=admin)).status_code == 404
    kept = await api.client.get(f"{DEVICES}/dev-1", headers=admin)
    assert kept.json()["attributes"] == {"site": "north"}


async def test_a_non_finite_attribute_is_refused_not_stored_as_null(api: Api) -> None:
    r = await api.client.post(
        DEVICES,
        content=b'{"id": "dev-1", "attributes": {"gain": NaN}}',
        headers={**api.auth(api.admin), "Content-Type": "application/json"},
    )

    assert [(e["pointer"], e["detail"]) for e in api.invalid(r)] == [
        ("#/attributes/gain", "numbers must be finite")
    ]


# --- errors quote only an excerpt -------------------------------------------------------


async def test_a_900_kb_attribute_value_is_refused_in_a_short_answer(api: Api) -> None:
    huge = "y" * 900_000

    r = await api.client.post(
        DEVICES, json={"id": "dev-1", "attributes": {"blob": huge}}, headers=api.auth(api.admin)
    )

    assert [e["pointer"] for e in api.invalid(r)] == ["#/attributes/blob"]
    assert len(r.content) < 2048
    assert longest_run(r.text, "y") <= ECHO_CHARS


@pytest.mark.parametrize("where", ["key", "value"])
async def test_a_900_kb_attribute_key_is_quoted_only_in_part(api: Api, where: str) -> None:
    """A key is part of the error's pointer: only an excerpt of it comes back."""
    attributes = {"z" * 900_000: 1} if where == "key" else {"z" * 100: "v", "w": "z" * 900_000}

    r = await api.client.post(DEVICES, json={"attributes": attributes}, headers=api.auth(api.admin))

    assert api.invalid(r)
    assert len(r.content) < 2048
    assert longest_run(r.text, "z") <= ECHO_CHARS


async def test_a_huge_metric_name_is_quoted_only_in_part_here_and_in_the_record(
    api: Api,
) -> None:
    token = await api.device()

    r = await api.ingest({"values": {"m" * 900_000: 1}}, token)

    [error] = api.invalid(r)
    assert error["pointer"] == excerpt("#/values/" + "m" * 900_000)
    assert len(r.content) < 2048
    rejected = await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))
    [entry] = rejected.json()["items"]
    assert longest_run(entry["detail"], "m") <= ECHO_CHARS
    assert len(entry["excerpt"]) <= 512


async def test_a_long_invalid_path_is_not_echoed_whole(api: Api) -> None:
    r = await api.client.get(f"{DEVICES}/{'Q' * 5000}", headers=api.auth(api.admin))

    api.invalid(r)
    assert longest_run(r.text, "Q") <= ECHO_CHARS


# --- a body over the limit is recorded ---------------------------------------------------


def over_one_mib() -> bytes:
    raw = json.dumps(at(0, temperature=1)).encode()
    return raw + b" " * (MIB + 1 - len(raw))


async def _in_chunks(raw: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), 64 * 1024):
        yield raw[start : start + 64 * 1024]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_one_mib_is_413_recorded_and_counted(api: Api, declared: bool) -> None:
    token = await api.device()
    raw = over_one_mib()
    content: bytes | AsyncIterator[bytes] = raw if declared else _in_chunks(raw)

    r = await api.client.post(url(), content=content, headers=api.auth(token))

    api.problem(r, 413, "payload-too-large")
    assert ("content-length" in r.request.headers) is declared

    rejected = await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))
    [entry] = rejected.json()["items"]
    assert (entry["transport"], entry["device_id"], entry["reason"]) == (
        "http",
        "dev-1",
        "payload-too-large",
    )
    assert entry["excerpt"].startswith('{"ts": ')
    assert len(entry["excerpt"]) <= 512
    metrics = await api.metrics()
    key = ("telehub_rejected_total", (("reason", "payload-too-large"), ("transport", "http")))
    assert metrics[key] == 1
    assert await api.stored() == []


async def test_a_body_over_one_mib_without_a_token_leaves_no_record(api: Api) -> None:
    await api.device()

    r = await api.client.post(url(), content=over_one_mib())

    api.problem(r, 401, "unauthenticated")
    rejected = await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))
    assert rejected.json()["items"] == []
