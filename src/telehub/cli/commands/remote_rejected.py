"""``telehub rejected``: the inputs the hub refused, through the API."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

import typer

from telehub.cli.remote import (
    CaFileOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    add_row,
    connect,
    print_json,
    print_table,
    table,
    when,
)

_EXCERPT = 60  # characters of the payload in the table; --json has all of it


def rejected(
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="only inputs naming this device")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="newest this many")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refused inputs (bad payloads, unknown devices), newest first."""
    with connect(url, token, ca_file) as client:
        found = list(islice(client.rejected(device_id=device, page_size=min(limit, 1000)), limit))
    if as_json:
        print_json(found)
        return
    rows = table("id", "received", "transport", "device", "reason", "detail", "excerpt")
    for r in found:
        excerpt = r.excerpt if len(r.excerpt) <= _EXCERPT else r.excerpt[: _EXCERPT - 1] + "…"
        add_row(
            rows,
            str(r.id),
            when(r.received_at),
            r.transport,
            r.device_id or "-",
            r.reason,
            r.detail,
            excerpt,
        )
    print_table(rows)
