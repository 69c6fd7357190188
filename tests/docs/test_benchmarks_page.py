"""The benchmarks page is made from bench/results/*.json, and never fails for a missing file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.docs.hook_modules import hook_module

bench_tables = hook_module("bench_tables")

FIXTURE = Path(__file__).parent / "fixtures" / "2026-12-07-1807-ingest-474495a.json"


def results_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bench" / "results"
    directory.mkdir(parents=True)
    return directory


def write(directory: Path, stem: str, **changes: Any) -> None:
    data = json.loads(FIXTURE.read_text())
    data.update(changes)
    (directory / f"{stem}.json").write_text(json.dumps(data))


def test_a_result_file_becomes_its_tables_with_where_it_came_from(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    shutil.copy(FIXTURE, directory)
    page = bench_tables.render(directory, tmp_path)

    assert "## Ingest and query" in page
    assert "### HTTP ingest — SQLite" in page
    assert "| measure | telehub | baseline (same run) | ratio | target | result |" in page
    assert "|" + " --- |" * 6 in page
    assert (
        "| single-reading POST, 32 clients | 2,100 req/s | bare ASGI + orjson: 5,000 req/s "
        "| 0.42 | ≥ 0.35 | PASS |" in page
    )
    assert "| batch \\| 100 readings | 127,200 readings/s |" in page, "a | stays in its cell"
    assert "commit `474495a`" in page
    assert "started 2026-12-07T18:07:00Z (UTC)" in page
    assert "Python 3.12.3, 2 CPUs, load average 0.3 / 0.2 / 0.1 at the start" in page
    assert "```sh\nmake bench\n```" in page
    assert "`bench/results/2026-12-07-1807-ingest-474495a.json` (1 run" in page
    assert "- server: 14.5 readings a commit" in page
    assert "Measured on uncommitted code" not in page


def test_benchmarks_without_a_result_file_are_named(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    shutil.copy(FIXTURE, directory)
    page = bench_tables.render(directory, tmp_path)
    missing = page.split("## Not measured yet")[1]
    assert "`make bench-mqtt`" in missing
    assert "`make bench-clients`" in missing
    assert "`make bench`" not in missing


def test_no_results_at_all_is_a_page_not_an_error(tmp_path: Path) -> None:
    page = bench_tables.render(tmp_path / "bench" / "results", tmp_path)
    assert page.startswith("No benchmark has written a result file yet.")
    for known in bench_tables.KNOWN:
        assert f"`{known.command}`" in page


def test_the_newest_clean_run_wins_over_a_newer_dirty_one(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    write(
        directory,
        "2026-12-01-1000-ingest-aaaaaaa",
        commit="aaaaaaa",
        started="2026-12-01T10:00:00Z",
    )
    write(
        directory,
        "2026-12-02-1000-ingest-bbbbbbb",
        commit="bbbbbbb",
        started="2026-12-02T10:00:00Z",
    )
    write(
        directory,
        "2026-12-03-1000-ingest-ccccccc-dirty",
        commit="ccccccc-dirty",
        started="2026-12-03T10:00:00Z",
    )
    page = bench_tables.render(directory, tmp_path)
    assert "commit `bbbbbbb`" in page
    assert "aaaaaaa" not in page
    assert "ccccccc" not in page
    assert "(3 runs of this benchmark kept)" in page


def test_only_dirty_runs_are_shown_and_said_to_be_dirty(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    write(directory, "2026-12-01-1000-ingest-aaaaaaa-dirty", commit="aaaaaaa-dirty")
    write(
        directory,
        "2026-12-02-1000-ingest-bbbbbbb-dirty",
        commit="bbbbbbb-dirty",
        started="2026-12-08T10:00:00Z",
    )
    page = bench_tables.render(directory, tmp_path)
    assert "commit `bbbbbbb-dirty`" in page
    assert "Measured on uncommitted code" in page


def test_variants_follow_their_benchmark_and_unreadable_files_are_listed(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    write(directory, "2026-12-01-1000-mqtt-aaaaaaa", benchmark="mqtt", title="MQTT ingest")
    write(
        directory,
        "2026-12-01-1001-ingest-postgres-aaaaaaa",
        benchmark="ingest-postgres",
        title="Ingest and query, PostgreSQL",
    )
    shutil.copy(FIXTURE, directory)
    (directory / "2026-12-01-1002-grpc-aaaaaaa.json").write_text("{not json")
    page = bench_tables.render(directory, tmp_path)
    order = [
        page.index(t)
        for t in (
            "## Ingest and query\n",
            "## Ingest and query, PostgreSQL (`ingest-postgres`)",
            "## MQTT ingest",
        )
    ]
    assert order == sorted(order)
    assert "- `2026-12-01-1002-grpc-aaaaaaa.json`" in page.split("## Unreadable result files")[1]


def test_a_quick_run_is_shown_only_until_its_full_size_run_exists(tmp_path: Path) -> None:
    directory = results_dir(tmp_path)
    write(directory, "a", benchmark="mqtt-sqlite-quick", title="MQTT ingest")
    assert "(`mqtt-sqlite-quick`)" in bench_tables.render(directory, tmp_path)

    write(directory, "b", benchmark="mqtt", title="MQTT ingest")
    page = bench_tables.render(directory, tmp_path)
    assert "## MQTT ingest\n" in page
    assert "mqtt-sqlite-quick" not in page
