"""What telehub/api/app.py relies on fastapi-offline for is still what it does.

``create_app`` builds its FastAPI app with ``FastAPIOffline`` so that Swagger UI
and ReDoc work on a network with no way out: the pages at /docs and /redoc
load their scripts and styles from files shipped in the package, mounted by
the app itself, and stay out of the OpenAPI schema. fastapi-offline is a
function returning a plain ``FastAPI``, not a subclass with behaviour of its
own. A release that changes any of this would break the docs of a
self-hosted hub, or the app built around them; this fails first, naming the
module to revisit.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from tests.api.conftest import Api
from tests.support.pins import assert_pinned

APP = "telehub/api/app.py (create_app)"
PACKAGE_STATIC = Path(fastapi_offline.__file__).parent / "static"


def test_fastapi_offline_is_the_release_the_app_was_written_for() -> None:
    assert_pinned("fastapi-offline", "1.7", revisit=APP)


def test_it_is_a_factory_of_a_plain_fastapi_app_taking_fastapis_arguments() -> None:
    assert inspect.isfunction(FastAPIOffline), f"FastAPIOffline is now a class: revisit {APP}"
    parameters = inspect.signature(FastAPIOffline).parameters
    assert list(parameters) == ["docs_url", "redoc_url", "args", "kwargs"], f"revisit {APP}"
    assert parameters["kwargs"].kind is inspect.Parameter.VAR_KEYWORD, f"revisit {APP}"
    app = FastAPIOffline(title="t", version="1", summary="s", responses={400: {}})
    assert type(app) is FastAPI, f"FastAPIOffline returns {type(app)}: revisit {APP}"
    assert (app.title, app.version, app.summary) == ("t", "1", "s"), f"revisit {APP}"
    # FastAPI's own CDN pages stay off; fastapi-offline adds its own at the same URLs.
    assert (app.docs_url, app.redoc_url) == (None, None), f"revisit {APP}"


async def test_swagger_ui_and_redoc_load_only_the_packages_own_files(api: Api) -> None:
    for page_url, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = await api.client.get(page_url)
        assert page.status_code == 200, f"{page_url}: {page.status_code}; revisit {APP}"
        assert "cdn." not in page.text, f"{page_url} loads from a CDN: revisit {APP}"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert any(asset.endswith(f"/{script}") for asset in assets), (page_url, assets)
        for asset in assets:
            assert asset.startswith("/"), f"{page_url} loads {asset} from elsewhere: revisit {APP}"
            served = await api.client.get(asset)
            assert served.status_code == 200, asset
            shipped = PACKAGE_STATIC / asset.rsplit("/", 1)[1]
            assert served.content == shipped.read_bytes(), f"{asset} is not the package's file"


async def test_the_docs_pages_stay_out_of_the_schema(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if "docs" in path or "redoc" in path], f"revisit {APP}"
