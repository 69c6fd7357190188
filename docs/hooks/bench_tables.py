"""The benchmarks page, made from the result files the benchmarks write (bench/results).

A figure pasted into the docs by hand outlives the code it measured; a figure
read from ``<stem>.json`` carries the commit, the date, the machine and the
command that produced it. For each benchmark the newest run of a clean tree is
shown (a ``-dirty`` run measured code nobody can check out), or else the newest
dirty one, saying so. A ``-quick`` variant (shorter rounds, for a change's
A/B) is shown only while its benchmark has no full-size run. A benchmark with
no result file yet is named as such:
the build never fails for a missing or unreadable file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Known:
    """A benchmark the project has, whether or not it has run yet."""

    name: str
    title: str
    command: str


KNOWN = (
    Known("ingest", "Ingest and query (REST, SQLite and PostgreSQL)", "make bench"),
    Known("mqtt", "MQTT ingest", "make bench-mqtt"),
    Known("fanout", "Live fan-out: WebSocket and SSE", "make bench-fanout"),
    Known("grpc", "gRPC ingest", "make bench-grpc"),
    Known("clients", "SDK clients and the simulator", "make bench-clients"),
    Known("cli", "CLI start-up", "make bench-cli"),
)


@dataclass(frozen=True)
class Result:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("benchmark") or self.path.stem)

    @property
    def commit(self) -> str:
        return str(self.data.get("commit", "unknown"))

    @property
    def dirty(self) -> bool:
        return self.commit.endswith("-dirty")

    @property
    def started(self) -> str:
        return str(self.data.get("started", ""))


def load(directory: Path) -> tuple[list[Result], list[str]]:
    """Every result file in ``directory``, and the names of those that could not be read."""
    results, unreadable = [], []
    if not directory.is_dir():
        return [], []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            unreadable.append(path.name)
            continue
        if not isinstance(data, dict) or not isinstance(data.get("tables", []), list):
            unreadable.append(path.name)
            continue
        results.append(Result(path, data))
    return results, unreadable


def newest(runs: Iterable[Result]) -> Result:
    """The newest clean run, else the newest run (dirty)."""
    ordered = sorted(runs, key=lambda r: (r.started, r.path.name))
    clean = [r for r in ordered if not r.dirty]
    return (clean or ordered)[-1]


def escape(text: object) -> str:
    """A value as Markdown text: what was printed, nothing read as markup."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;")
    for char in "\\`*_[]|":
        out = out.replace(char, "\\" + char)
    return " ".join(out.split())


def markdown_table(columns: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    width = len(columns)
    lines = [
        "| " + " | ".join(escape(c) for c in columns) + " |",
        "|" + " --- |" * width,
    ]
    for row in rows:
        cells = [escape(c) for c in row][:width]
        cells += [""] * (width - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_text(machine: object) -> str:
    if not isinstance(machine, dict):
        return "not recorded"
    load = machine.get("load")
    load_text = (
        " / ".join(f"{x}" for x in load) if isinstance(load, list) and load else "not recorded"
    )
    return (
        f"Python {escape(machine.get('python', '?'))}, {escape(machine.get('cpus', '?'))} CPUs, "
        f"load average {escape(load_text)} at the start, {escape(machine.get('platform', '?'))}"
    )


def section(result: Result, runs: int, root: Path, known: Sequence[Known] = KNOWN) -> str:
    data = result.data
    title = escape(data.get("title") or result.name)
    if result.name not in {k.name for k in known}:
        title += f" (`{result.name}`)"  # a variant (-postgres, -quick) shares its base's title
    where = result.path.relative_to(root) if result.path.is_relative_to(root) else result.path
    lines = [
        f"## {title}",
        "",
        f"Benchmark `{result.name}`, run at commit `{result.commit}`, "
        f"started {escape(result.started or 'at an unrecorded time')} (UTC).",
        "",
    ]
    if result.dirty:
        lines += [
            '!!! warning "Measured on uncommitted code"',
            "    No result file of a clean tree exists for this benchmark yet; these figures "
            "come from a tree with uncommitted changes to `src/` or `bench/`.",
            "",
        ]
    lines += [
        f"- Machine: {machine_text(data.get('machine'))}",
        f"- Result file: `{where}` ({runs} run{'s' if runs != 1 else ''} of this benchmark kept)",
        "",
        "Reproduce with:",
        "",
        "```sh",
        str(data.get("command") or "unknown"),
        "```",
        "",
    ]
    for tab in data.get("tables", []):
        if not isinstance(tab, dict):
            continue
        if tab.get("title"):
            lines += [f"### {escape(tab['title'])}", ""]
        lines += [markdown_table(tab.get("columns", []), tab.get("rows", [])), ""]
    notes = [n for n in data.get("notes", []) if str(n).strip()]
    if notes:
        lines += ["Notes printed with the tables:", ""]
        lines += [f"- {escape(n)}" for n in notes]
        lines.append("")
    return "\n".join(lines)


def render(directory: Path, root: Path, known: Sequence[Known] = KNOWN) -> str:
    """The generated part of the benchmarks page."""
    results, unreadable = load(directory)
    by_name: dict[str, list[Result]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    order = [k.name for k in known]
    full_size = {_base(n, order) for n in by_name if not n.endswith("-quick")}
    shown = [n for n in by_name if not (n.endswith("-quick") and _base(n, order) in full_size)]
    names = sorted(shown, key=lambda n: (_rank(n, order), n))
    parts = [section(newest(by_name[n]), len(by_name[n]), root, known) for n in names]
    missing = [k for k in known if k.name not in by_name]
    if missing:
        lines = ["## Not measured yet", "", "These benchmarks have no result file yet:", ""]
        lines += [f"- {escape(k.title)} (`{k.name}`): `{k.command}`" for k in missing]
        parts.append("\n".join(lines) + "\n")
    if unreadable:
        lines = ["## Unreadable result files", ""]
        lines += [f"- `{name}`" for name in unreadable]
        parts.append("\n".join(lines) + "\n")
    if not results:
        parts.insert(0, "No benchmark has written a result file yet.\n")
    return "\n".join(parts)


def _base(name: str, order: Sequence[str]) -> str:
    """The benchmark a variant belongs to (``mqtt-sqlite-quick`` → ``mqtt``)."""
    rank = _rank(name, order)
    return order[rank] if rank < len(order) else name


def _rank(name: str, order: Sequence[str]) -> int:
    """Known benchmarks first, in their order, each followed by its variants
    (``ingest-postgres``, ``mqtt-sqlite-quick``); anything else after them."""
    for index, base in enumerate(order):
        if name == base or name.startswith(base + "-"):
            return index
    return len(order)
