"""The metrics reference, made from the instruments a running hub registers.

``telehub.core.metrics.Metrics`` is the one place every Prometheus instrument
is declared; listing them from it means the docs name what ``/metrics``
really serves, with the labels and help text of the code.
"""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase
from settings_tables import cell

# How each type appears in the exposition: a counter gains _total, a histogram
# is read through its _bucket, _sum and _count series.
SUFFIX = {"counter": "_total", "histogram": "_bucket, _sum, _count"}


def instruments(metrics: object) -> list[MetricWrapperBase]:
    """The instruments an object holds, in the order it declared them."""
    return [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]


def table(metrics: object) -> str:
    lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for metric in instruments(metrics):
        kind = metric._type
        name = metric._name + (SUFFIX["counter"] if kind == "counter" else "")
        series = f" (`{SUFFIX['histogram']}`)" if kind == "histogram" else ""
        labels = ", ".join(f"`{label}`" for label in metric._labelnames)
        lines.append(f"| `{name}`{series} | {kind} | {labels} | {cell(metric._documentation)} |")
    return "\n".join(lines)
