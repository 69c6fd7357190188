"""The JSON result file every benchmark writes: the contract the docs are generated from."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from _report import NO_TARGET, Figure, Report, command, result_name, save_results, show

STEM = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{4}-ingest-sqlite-quick-[0-9a-f]{4,}(-dirty)?$")


def _report() -> Report:
    rep = Report("sqlite")
    rep.figures += [
        Figure("batch ingest", "68,519 readings/s", "160,758 rows/s", 0.426, "ratio ≥ 0.5", False),
        Figure(
            "single POST vs the HTTP ceiling", "3,053 req/s", "6,406 req/s", 0.48, NO_TARGET, None
        ),
        Figure("check", "all", "all", None, "all, once", True),
    ]
    rep.notes.append("[yellow]warning[/]: a note with markup")
    return rep


def test_json_file_has_the_documented_shape(tmp_path: Path) -> None:
    table = show(_report(), "telehub benchmark", "telehub", 12.3)
    txt, js = save_results(
        "ingest-sqlite-quick",
        title="Ingest and query",
        command="make bench",
        tables=[table],
        directory=tmp_path,
    )
    assert txt.parent == js.parent == tmp_path
    assert txt.stem == js.stem
    assert STEM.match(js.stem), js.name
    assert "telehub benchmark — sqlite" in txt.read_text()

    doc = json.loads(js.read_text())
    assert list(doc) == [
        "benchmark", "title", "command", "commit", "started", "machine", "tables", "notes"
    ]  # fmt: skip
    assert doc["benchmark"] == "ingest-sqlite-quick"
    assert doc["title"] == "Ingest and query"
    assert doc["command"] == "make bench"
    assert js.stem.endswith(doc["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", doc["started"])
    machine = doc["machine"]
    assert set(machine) == {"python", "cpus", "load", "platform"}
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert isinstance(machine["cpus"], int)
    assert machine["cpus"] >= 1
    assert len(machine["load"]) == 3
    assert all(isinstance(x, float | int) for x in machine["load"])

    [tab] = doc["tables"]
    assert set(tab) == {"title", "columns", "rows"}
    assert tab["title"] == "telehub benchmark — sqlite"
    assert tab["columns"] == [
        "measure",
        "telehub",
        "baseline (same run)",
        "ratio",
        "target",
        "result",
    ]
    assert tab["rows"] == [
        ["batch ingest", "68,519 readings/s", "160,758 rows/s", "0.43", "ratio ≥ 0.5", "MISS"],
        ["single POST vs the HTTP ceiling", "3,053 req/s", "6,406 req/s", "0.48", "none", ""],
        ["check", "all", "all", "", "all, once", "PASS"],
    ]
    assert "warning: a note with markup" in doc["notes"]
    assert all(isinstance(n, str) and "[/]" not in n for n in doc["notes"])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "ingest"),
        ({"backend": "both", "default": "both"}, "ingest"),
        ({"backend": "postgres", "default": "both"}, "ingest-postgres"),
        ({"backend": "sqlite", "default": "both", "quick": True}, "ingest-sqlite-quick"),
    ],
)
def test_result_name_keeps_partial_runs_apart(kwargs: dict[str, object], name: str) -> None:
    assert result_name("ingest", **kwargs) == name  # type: ignore[arg-type]


def test_command_is_the_make_target_without_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench/ingest_query.py"])
    assert command("bench") == "make bench"
    monkeypatch.setattr(sys, "argv", ["bench/ingest_query.py", "--backend", "sqlite", "--quick"])
    assert command("bench") == ".venv/bin/python bench/ingest_query.py --backend sqlite --quick"
