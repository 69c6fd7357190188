"""What every benchmark prints: figures next to their same-run baseline, as one table."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _harness import ingest_knobs

console = Console(width=max(130, shutil.get_terminal_size().columns), record=True)
RESULTS = Path(__file__).resolve().parent / "results"


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


def save_results(name: str) -> Path:
    """Everything printed, to ``bench/results/<date>-<time>-<name>-<commit>.txt``: the
    figures the docs quote, with the commit they measured (``-dirty``: uncommitted changes)."""
    root = RESULTS.parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench"):
        commit += "-dirty"
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y-%m-%d-%H%M')}-{name}-{commit}.txt"
    path.write_text(console.export_text())
    console.print(f"saved to {path.relative_to(root)}", highlight=False)
    return path
