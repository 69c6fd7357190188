"""mkdocs hook: the pages that are generated from the code and from result files.

``<!-- telehub:settings GROUP -->`` in a page becomes the table of that group's
settings (settings_tables.py, from ``telehub.config.Settings``), and
``<!-- telehub:benchmarks -->`` the newest results of every benchmark
(bench_tables.py, from ``bench/results/*.json``), and ``<!-- telehub:metrics -->``
every Prometheus instrument (metrics_table.py, from ``telehub.core.metrics``).
They are rendered when the site is built, so none can go stale in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench_tables import render as render_benchmarks
from metrics_table import table as metrics_table
from settings_tables import DocsError, render_groups, undocumented

SETTINGS_MARKER = re.compile(r"<!--\s*telehub:settings\s+([a-z]+)\s*-->")
BENCHMARKS_MARKER = re.compile(r"<!--\s*telehub:benchmarks\s*-->")
METRICS_MARKER = re.compile(r"<!--\s*telehub:metrics\s*-->")


def settings_page(markdown: str) -> str:
    """``markdown`` with every settings marker replaced by its group's table."""
    from telehub.config import Settings

    fields = Settings.model_fields
    missing = undocumented(fields)
    if missing:
        raise DocsError(f"Settings fields without a description: {', '.join(missing)}")
    tables = render_groups(fields, SETTINGS_MARKER.findall(markdown))
    return SETTINGS_MARKER.sub(lambda m: tables[m.group(1)], markdown)


def benchmarks_page(markdown: str, root: Path) -> str:
    generated = render_benchmarks(root / "bench" / "results", root)
    return BENCHMARKS_MARKER.sub(lambda _: generated, markdown)


def metrics_page(markdown: str) -> str:
    from telehub.core.metrics import Metrics

    generated = metrics_table(Metrics())
    return METRICS_MARKER.sub(lambda _: generated, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs calls this for every page, before it becomes HTML."""
    root = Path(config["config_file_path"]).resolve().parent
    try:
        if SETTINGS_MARKER.search(markdown):
            markdown = settings_page(markdown)
        if BENCHMARKS_MARKER.search(markdown):
            markdown = benchmarks_page(markdown, root)
        if METRICS_MARKER.search(markdown):
            markdown = metrics_page(markdown)
    except DocsError as exc:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_path}: {exc}") from exc
    return markdown
