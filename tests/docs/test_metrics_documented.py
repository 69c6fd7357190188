"""The operations page lists every Prometheus instrument a hub registers."""

from __future__ import annotations

from telehub.core.metrics import Metrics
from tests.docs.hook_modules import ROOT, hook_module

generate = hook_module("generate")
metrics_table = hook_module("metrics_table")


def test_every_instrument_is_on_the_operations_page() -> None:
    page = generate.metrics_page((ROOT / "docs" / "operations.md").read_text())
    found = metrics_table.instruments(Metrics())
    assert len(found) > 20
    for metric in found:
        assert f"| `{metric._name}" in page, metric._name


def test_a_counter_is_named_as_prometheus_serves_it() -> None:
    rows = metrics_table.table(Metrics())
    assert (
        "| `telehub_rejected_total` | counter | `transport`, `reason` | Inputs refused, by reason |"
        in rows
    )
    assert "| `telehub_ingest_commit_seconds` (`_bucket, _sum, _count`) | histogram |" in rows
