"""The API reference pages, /docs (Swagger UI) and /redoc (ReDoc), served offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank without internet;
these load them from the installed `fastapi-offline` package (its `static` folder: Swagger UI 5,
which reads OpenAPI 3.1, and ReDoc 2), as the dashboard loads plotly from the plotly package.
Only the files are used, not that package's app factory, so the app keeps its own routes,
middleware and token guard.

The pages are open shells, like the dashboard's: with EVOLVER_API_TOKEN set, /openapi.json still
needs the token, so api_docs.js fetches it through dashboard.js (the same token prompt, the same
tab-scoped token) and hands Swagger UI the document; Swagger UI's own requests ("Try it out")
carry the tab's token too, unless its Authorize button set one.
"""

from __future__ import annotations

import importlib.resources
from html import escape
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from api import pages_html
from api.routes.pages import PAGE_HEADERS, STATIC_DIR, _root_path, _static_response

router = APIRouter(include_in_schema=False)

OPENAPI_PATH = "/openapi.json"
ASSET_PREFIX = "/static/docs/"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
PACKAGE_ASSETS = {"swagger-ui-bundle.js": JS, "swagger-ui.css": CSS, "redoc.standalone.js": JS}
OWN_ASSETS = {"api_docs.js": JS}  # ours, in api/static (dashboard.js comes from the dashboard's route)

Viewer = Literal["swagger", "redoc"]
VIEWER_FILES: dict[str, tuple[str, ...]] = {"swagger": ("swagger-ui.css", "swagger-ui-bundle.js"),
                                            "redoc": ("redoc.standalone.js",)}
TITLES = {"swagger": "Swagger UI", "redoc": "ReDoc"}
PAGE_PATHS = {"swagger": "/docs", "redoc": "/redoc"}


def package_asset_path(name: str) -> Path:
    """One of Swagger UI's / ReDoc's files inside the installed fastapi-offline package."""
    try:
        folder = importlib.resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        raise FileNotFoundError("the API reference pages need the fastapi-offline package "
                                "(a dependency of evolver: pip install -e .)") from None
    path = Path(str(folder / name))
    if not path.is_file():
        raise FileNotFoundError(f"{name} is missing from the fastapi-offline package ({path})")
    return path


def reference_page(viewer: Viewer, root: str) -> str:
    """The page shell, in the dashboard's frame (its stylesheet, the token prompt, dashboard.js for
    API calls with the token), with the viewer's files and api_docs.js, which fetches the OpenAPI
    document and starts the viewer."""
    href = escape(root, quote=True)
    styles = "".join(f'<link rel="stylesheet" href="{href}{ASSET_PREFIX}{name}">\n'
                     for name in VIEWER_FILES[viewer] if name.endswith(".css"))
    scripts = [f"docs/{name}" for name in VIEWER_FILES[viewer] if name.endswith(".js")]
    other = "redoc" if viewer == "swagger" else "swagger"
    body = f"""{styles}<p class="muted">The REST API of this server. Its OpenAPI document:
<a href="{href}{OPENAPI_PATH}">{OPENAPI_PATH}</a> (with the server's token, when it has one) · the same
in <a href="{href}{PAGE_PATHS[other]}">{TITLES[other]}</a></p>
<p id="docs-error" class="error" role="status" hidden></p>
<noscript><p>This page needs JavaScript; the OpenAPI document itself is at {OPENAPI_PATH}.</p></noscript>
<div id="api-viewer"></div>"""
    return pages_html._page(f"REST API ({TITLES[viewer]})", root, body, (*scripts, "dashboard.js", "docs/api_docs.js"),
                            body_data=f' data-viewer="{viewer}"')


@router.get(PAGE_PATHS["swagger"], response_class=HTMLResponse)
def swagger_ui_page(request: Request) -> HTMLResponse:
    return HTMLResponse(reference_page("swagger", _root_path(request)), headers=PAGE_HEADERS)


@router.get(PAGE_PATHS["redoc"], response_class=HTMLResponse)
def redoc_page(request: Request) -> HTMLResponse:
    return HTMLResponse(reference_page("redoc", _root_path(request)), headers=PAGE_HEADERS)


@router.get(ASSET_PREFIX + "{name}")
def reference_asset(name: str, request: Request) -> Response:
    # A fixed list of names: no request path reaches the file system.
    if name in PACKAGE_ASSETS:
        return _static_response(request, package_asset_path(name), PACKAGE_ASSETS[name])
    if name in OWN_ASSETS:
        return _static_response(request, STATIC_DIR / name, OWN_ASSETS[name])
    raise HTTPException(status_code=404, detail="no such file")
