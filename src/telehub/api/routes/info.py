"""``GET /api/v1/info`` (where the hub's listeners are) and ``GET /`` (a way in)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from telehub.api.deps import SettingsDep
from telehub.api.info_schemas import HubInfo, hub_info

router = APIRouter(tags=["health"])


@router.get("/api/v1/info", response_model=HubInfo)
async def info(request: Request, settings: SettingsDep) -> HubInfo:
    """The hub's version, where devices reach its MQTT broker and clients its gRPC server,
    and its input limits (no token needed). The simulator and the CLI ask here first."""
    return hub_info(settings, client_host=request.url.hostname)


@router.get("/", include_in_schema=False)
async def root(request: Request) -> RedirectResponse:
    """There is no page at the root yet: the API's documentation is the way in."""
    return RedirectResponse(request.scope.get("root_path", "") + "/docs", status_code=307)
