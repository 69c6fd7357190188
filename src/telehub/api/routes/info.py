"""``GET /api/v1/info`` (where the hub's listeners are) and ``GET /`` (a way in)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from telehub import __version__
from telehub.api.deps import SettingsDep
from telehub.api.info_schemas import GrpcInfo, HubInfo, LimitsInfo, MqttInfo
from telehub.config import Settings

_EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})

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


def hub_info(settings: Settings, *, client_host: str | None) -> HubInfo:
    """What this hub tells its clients; ``client_host``: the API's host as the client named it."""
    return HubInfo(
        version=__version__,
        mqtt=_mqtt(settings, client_host),
        grpc=GrpcInfo(target=_address(settings.grpc_host, settings.grpc_port, client_host)),
        limits=LimitsInfo(
            max_body_bytes=settings.max_body_bytes,
            max_batch_readings=settings.max_batch_readings,
            max_future_skew_seconds=settings.max_future_skew_seconds,
            grpc_max_message_bytes=settings.grpc_max_message_bytes,
            ws_max_message_bytes=settings.ws_max_message_bytes,
        ),
    )


def _mqtt(settings: Settings, client_host: str | None) -> MqttInfo:
    if settings.mqtt_url == "embedded":
        where = _address(settings.mqtt_embedded_host, settings.mqtt_embedded_port, client_host)
        return MqttInfo(broker="embedded", urls=[f"mqtt://{where}"], protocol="3.1.1")
    url = urlsplit(settings.mqtt_url)
    tls = url.scheme == "mqtts"
    # Only scheme, host and port: a URL may carry a login, which is no client's business.
    port = url.port or (8883 if tls else 1883)
    where = _address(url.hostname or "", port, client_host)
    return MqttInfo(broker="external", urls=[f"{url.scheme}://{where}"], protocol="3.1.1, 5")


def _address(host: str, port: int, client_host: str | None) -> str:
    if host in _EVERY_ADDRESS and client_host:
        host = client_host
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
