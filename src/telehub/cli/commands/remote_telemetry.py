"""``telehub send``, ``telehub query`` and ``telehub latest``: telemetry through the API."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from telehub.cli.remote import (
    CaFileOpt,
    DeviceArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    add_row,
    connect,
    print_json,
    print_table,
    shown,
    table,
    time_option,
    typed_pairs,
    when,
)
from telehub.core.ports import Aggregate

if TYPE_CHECKING:
    from telehub.api.schemas import SeriesOut


def send(
    device_id: DeviceArg,
    values: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...",
            help="numbers are readings; anything else (on, true, {...}) is state",
            show_default=False,
        ),
    ],
    ts: Annotated[datetime | None, time_option("--ts", "when it was measured; default now")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one set of values for a device (needs a write token or the device's own)."""
    body = typed_pairs(values, "KEY=VALUE")
    with connect(url, token, ca_file) as client:
        accepted = client.send_telemetry(device_id, body, ts=ts)
    if as_json:
        print_json(accepted)
    else:
        typer.echo(
            f"accepted {accepted.accepted}, duplicates {accepted.duplicates}, "
            f"state {accepted.state}"
        )


def query(
    device_id: DeviceArg,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="only this metric (repeatable); default all"),
    ] = None,
    start: Annotated[
        datetime | None, time_option("--from", "inclusive; default 24 h before --to")
    ] = None,
    end: Annotated[datetime | None, time_option("--to", "exclusive; default now")] = None,
    interval: Annotated[
        str | None, typer.Option(help="bucket width (30s, 1m, 1h, 1d); raw points if absent")
    ] = None,
    agg: Annotated[
        Aggregate | None, typer.Option(help="aggregate per bucket (with --interval); default avg")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, max=10_000, help="points per metric in a page; default 1000 (--csv: all pages)"
        ),
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="metric,ts,value rows with a header, every page")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Readings of a device over a time range, raw or in buckets."""
    if as_csv and as_json:
        raise typer.BadParameter("choose one of --csv and --json", param_hint="--csv")
    if agg is not None and interval is None:
        raise typer.BadParameter("aggregates need buckets: add --interval", param_hint="--agg")
    with connect(url, token, ca_file) as client:
        pages = client.query_pages(
            device_id,
            metrics=metric,
            start=start,
            end=end,
            interval=interval,
            agg=agg.value if agg is not None else None,
            limit=limit,
        )
        if as_csv:
            # Page after page, as they come: a long range need not fit in memory.
            _write_csv(pages)
            return
        series = next(pages)  # one page; its JSON carries `next` and `truncated`
    if as_json:
        print_json(series)
    else:
        rows = table("metric", "ts", "value")
        for name, points in series.series.items():
            for p in points:
                add_row(rows, name, when(p.ts), shown(p.value))
        print_table(rows)
        if series.truncated:
            typer.echo(
                f"more points than shown for {', '.join(series.truncated)}: a page holds "
                f"{limit or 1000} per metric; --csv writes every page",
                err=True,
            )


def _write_csv(pages: Iterable[SeriesOut]) -> None:
    """The rows of every page: each metric's in time order, pages one after another."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("metric", "ts", "value"))
    for series in pages:
        for name, points in series.series.items():
            writer.writerows((name, when(p.ts), shown(p.value)) for p in points)


def latest(
    device_id: DeviceArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    ca_file: CaFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest value of each of a device's metrics, and its state."""
    with connect(url, token, ca_file) as client:
        found = client.latest(device_id)
    if as_json:
        print_json(found)
        return
    rows = table("name", "kind", "ts", "value")
    for name, reading in sorted(found.readings.items()):
        add_row(rows, name, "reading", when(reading.ts), shown(reading.value))
    for name, state in sorted(found.state.items()):
        add_row(rows, name, "state", when(state.ts), shown(state.value))
    print_table(rows)
