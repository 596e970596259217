"""Dashboard pages and their static assets.

The pages are HTML shells: everything they show comes from the REST JSON, fetched by the browser
every two seconds, so the dashboard reads exactly what any other client reads and needs no
second code path into the store. Plotly's JavaScript is served from the installed `plotly`
wheel (its package data), so the dashboard works offline and never touches a CDN.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from api import pages_html

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# Only these files are served from api/static: a fixed list, so no request path ever reaches the
# file system (no traversal to worry about).
STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "campaign_list.js": "text/javascript; charset=utf-8",
    "campaign_view.js": "text/javascript; charset=utf-8",
}

# The pages load scripts and styles from this server only; plotly inserts <style> elements and
# draws data: images, hence the two relaxations.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
# Static files change only with a new install; browsers revalidate with the ETag after an hour.
STATIC_CACHE_CONTROL = "public, max-age=3600"


def plotly_js_path() -> Path:
    """plotly.min.js inside the installed plotly package (its `package_data` folder)."""
    path = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js is missing from the plotly package ({path})")
    return path


def _etag(path: Path) -> str:
    stat = path.stat()
    return '"' + hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:20] + '"'


def _static_response(request: Request, path: Path, media_type: str) -> Response:
    """The file, or 304 when the browser's copy (If-None-Match) is current."""
    etag = _etag(path)
    headers = {"ETag": etag, "Cache-Control": STATIC_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _root_path(request: Request) -> str:
    """The prefix the app is mounted under (behind a proxy), so the page's own links still work."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/", response_class=HTMLResponse)
def campaign_list_page(request: Request) -> HTMLResponse:
    return HTMLResponse(pages_html.campaign_list_page(_root_path(request)), headers=PAGE_HEADERS)


@router.get("/campaigns/{campaign_id}/view", response_class=HTMLResponse)
def campaign_page(campaign_id: int, request: Request) -> HTMLResponse:
    # A missing campaign is reported by the page itself (its first fetch gets the API's 404), so
    # this route needs no store access and the page and REST can never disagree.
    return HTMLResponse(pages_html.campaign_page(campaign_id, _root_path(request)), headers=PAGE_HEADERS)


@router.get("/static/plotly.min.js")
def plotly_js(request: Request) -> Response:
    return _static_response(request, plotly_js_path(), "text/javascript; charset=utf-8")


@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="no such static file")
    return _static_response(request, STATIC_DIR / name, media_type)
