"""Options more than one server command takes, typer only (see telehub.cli.lazy)."""

from __future__ import annotations

from typing import Annotated

import typer

MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", help="serve Prometheus metrics here (env TELEHUB_METRICS_PORT)"),
]
