"""Liveness, readiness (database reachable) and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from telehub.api.deps import ComponentsDep, DatabaseDep, MetricsDep, ReadScope
from telehub.api.problems import problem

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no token needed)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(database: DatabaseDep, components: ComponentsDep) -> dict[str, str] | Response:
    """The database answers (no token needed); the body also says what the parts running
    in this process report (``"mqtt": "subscribed"``), which do not decide readiness."""
    try:
        await database.ping()
    except Exception as exc:
        log.warning("readiness check failed: %s", exc)
        return problem(503, "not-ready", "Not ready", f"database unreachable: {type(exc).__name__}")
    return {"status": "ready", **components.snapshot()}


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, _: ReadScope) -> Response:
    """Prometheus text format; needs a `read` token (Prometheus: `authorization` credentials)."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
