"""What every benchmark prints: figures next to their same-run baseline, as one table."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from _harness import ingest_knobs

console = Console(width=max(130, shutil.get_terminal_size().columns))


@dataclass
class Figure:
    what: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None


@dataclass
class Report:
    backend: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def header(name: str, plan: object, knobs_label: str) -> None:
    """The machine's state and the plan: a figure means little without them."""
    console.print(
        f"{name}: python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"load avg {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {plan}; "
        f"{knobs_label}: {ingest_knobs() or 'defaults'}",
        highlight=False,
    )


def show(rep: Report, title: str, subject: str, elapsed: float) -> None:
    table = Table(title=f"{title} — {rep.backend} ({elapsed:.0f} s)")
    for col in ("measure", subject, "baseline (same run)", "ratio", "target", "result"):
        table.add_column(col, justify="right" if col == "ratio" else "left")
    for f in rep.figures:
        result = "" if f.ok is None else ("[green]PASS[/]" if f.ok else "[red]MISS[/]")
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        table.add_row(f.what, f.value, f.baseline, ratio, f.target, result)
    console.print(table)
    for note in rep.notes:
        console.print(f"  {note}", highlight=False)
    console.print()
