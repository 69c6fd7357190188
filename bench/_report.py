"""What every benchmark prints: figures next to their same-run baseline, as one table;
and the result files the docs are generated from (``save_results``)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from _harness import ingest_knobs

console = Console(width=max(130, shutil.get_terminal_size().columns), record=True)
RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("measure", "baseline (same run)", "ratio", "target", "result")
# No target was ever set for this figure: said so, never a PASS made up for it.
NO_TARGET = "none"


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


@dataclass(frozen=True)
class Shown:
    """One table as printed, every cell a plain string: what the JSON result file holds."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]


@dataclass(frozen=True)
class Machine:
    """Taken once, when the benchmark starts: the state its figures were measured in."""

    started: datetime
    python: str
    cpus: int
    load: tuple[float, float, float]
    platform: str

    @classmethod
    def now(cls) -> Machine:
        return cls(
            datetime.now(UTC),
            platform.python_version(),
            os.cpu_count() or 0,
            os.getloadavg(),
            platform.platform(),
        )


MACHINE = Machine.now()
_header: list[str] = []  # the header line, once printed: the result file's first note


def plain(markup: str) -> str:
    """Text without rich's markup ("[green]PASS[/]" → "PASS")."""
    return Text.from_markup(markup).plain


def header(name: str, plan: object, knobs_label: str) -> None:
    """The machine's state and the plan: a figure means little without them."""
    line = (
        f"{name}: python {MACHINE.python}, {MACHINE.cpus} cpus, "
        f"load avg {', '.join(f'{x:.2f}' for x in MACHINE.load)}; {plan}; "
        f"{knobs_label}: {ingest_knobs() or 'defaults'}"
    )
    console.print(line, highlight=False)
    _header[:] = [line]


def show(rep: Report, title: str, subject: str, elapsed: float) -> Shown:
    """Print the report's table and notes; returns them as ``save_results`` stores them."""
    columns = [COLUMNS[0], subject, *COLUMNS[1:]]
    table = Table(title=f"{title} — {rep.backend} ({elapsed:.0f} s)")
    for col in columns:
        table.add_column(col, justify="right" if col == "ratio" else "left")
    rows = []
    for f in rep.figures:
        result = "" if f.ok is None else ("[green]PASS[/]" if f.ok else "[red]MISS[/]")
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        cells = [f.what, f.value, f.baseline, ratio, f.target, result]
        table.add_row(*cells)
        rows.append([plain(c) for c in cells])
    console.print(table)
    for note in rep.notes:
        console.print(f"  {note}", highlight=False)
    console.print()
    return Shown(f"{title} — {rep.backend}", columns, rows, [plain(n) for n in rep.notes])


def result_name(
    base: str, *, backend: str | None = None, default: str = "", quick: bool = False
) -> str:
    """The stable name of a run's kind: ``base``, ``-<backend>`` when not the default
    one(s), ``-quick`` for a short run (so neither stands in for the full run in the docs)."""
    name = base + (f"-{backend}" if backend and backend != default else "")
    return name + ("-quick" if quick else "")


def command(make_target: str) -> str:
    """The command that produced this run, as the docs would show it."""
    if not sys.argv[1:]:
        return f"make {make_target}"
    return shlex.join([".venv/bin/python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def _commit(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench"):
        commit += "-dirty"
    return commit


def save_results(
    name: str,
    *,
    title: str,
    command: str,
    tables: list[Shown],
    directory: Path = RESULTS,
) -> tuple[Path, Path]:
    """Everything printed, to ``<dir>/<date>-<time>-<name>-<commit>.txt``, and the tables
    as JSON next to it (``.json``): the docs' figures are generated from these files, each
    with the commit it measured (``-dirty``: src/ or bench/ had uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    commit = _commit(root)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{MACHINE.started:%Y-%m-%d-%H%M}-{name}-{commit}"
    txt, js = stem.with_suffix(".txt"), stem.with_suffix(".json")
    notes = list(_header)
    for table in tables:
        if table.notes and len(tables) > 1:
            notes.append(f"{table.title}:")
        notes += table.notes
    document = {
        "benchmark": name,
        "title": title,
        "command": command,
        "commit": commit,
        "started": MACHINE.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": MACHINE.python,
            "cpus": MACHINE.cpus,
            "load": [round(x, 2) for x in MACHINE.load],
            "platform": MACHINE.platform,
        },
        "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in tables],
        "notes": notes,
    }
    js.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    console.print(f"saved to {_shown(txt, root)} and {_shown(js, root)}", highlight=False)
    txt.write_text(console.export_text())
    return txt, js


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
