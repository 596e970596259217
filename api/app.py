"""The FastAPI application: `create_app(settings)` builds one; `uvicorn` (via `evolver serve`) runs it.

The store is opened once when the app starts and closed when it stops; the launcher is built then
too (or handed in, e.g. a ThreadLauncher for tests) and closed on shutdown, which stops the local
Ray head it may have started.

With a token configured, the token guard (api/token_guard.py) is the outermost layer: every route
of the guarded routers, and any route added later, needs the token; the open routers (liveness,
metrics, the page shells of the dashboard and of /docs and /redoc, their static files) answer
without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from api.body_limit import BodyLimitMiddleware
from api.deps import bearer_scheme
from api.read_cache import ReadCacheMiddleware
from api.launcher import Launcher, RayJobLauncher
from api.routes import api_docs, campaigns, confirmation, downloads, health, pages
from api.settings import ApiSettings
from api.token_guard import TokenGuardMiddleware
from evolver.campaign import CampaignSpec
from evolver.store import Store

LauncherFactory = Callable[[ApiSettings, str], Launcher]

GUARDED_ROUTERS = (campaigns.router, confirmation.router, downloads.router)  # campaign data, files, writes
# No campaign data: liveness, metrics, page shells (the dashboard's, /docs, /redoc), scripts. The
# OpenAPI document itself stays guarded: the /docs page fetches it with the tab's token.
OPEN_ROUTERS = (health.router, pages.router, api_docs.router)
UNAUTHORIZED = {401: {"description": "the server has a token and the request lacks it (or has a wrong one)"}}


def ray_job_launcher(settings: ApiSettings, db_url: str) -> Launcher:
    return RayJobLauncher(db_url, address=settings.ray_address, num_cpus=settings.ray_num_cpus,
                          cancel_grace_seconds=settings.cancel_grace_seconds, watch_seconds=settings.job_watch_seconds)


def create_app(settings: ApiSettings | None = None, launcher: LauncherFactory = ray_job_launcher) -> FastAPI:
    """An app bound to `settings` (default: from the environment); `launcher(settings, db_url)`
    builds what starts campaigns (default: Ray jobs)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db_url = settings.database_url()
        if db_url.startswith("sqlite:"):
            settings.project_dir.mkdir(parents=True, exist_ok=True)
        app.state.settings = settings
        app.state.store = Store.open(db_url)
        try:
            app.state.launcher = launcher(settings, db_url)
            try:
                yield
            finally:
                app.state.launcher.close()
        finally:
            app.state.store.close()

    # docs_url / redoc_url off: FastAPI's pages load their scripts from a CDN; api/routes/api_docs.py
    # serves both from installed files instead.
    app = FastAPI(title="Evolver", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Evolve YOLO training hyperparameters with YOLOv5's genetic algorithm on Ray.")
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ReadCacheMiddleware, ttl=settings.read_cache_seconds)
    if settings.api_token is not None:  # added last, so it runs first: before the cache can answer
        app.add_middleware(TokenGuardMiddleware, token=settings.api_token.get_secret_value(),
                           open_routes=[route for router in OPEN_ROUTERS for route in router.routes])
    for router in GUARDED_ROUTERS:
        app.include_router(router, dependencies=[Depends(bearer_scheme)], responses=UNAUTHORIZED)
    for router in OPEN_ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, plus CampaignSpec: POST /campaigns reads its body by hand (JSON or
    multipart), so FastAPI does not see the model; the schema still documents it."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        models = schema.setdefault("components", {}).setdefault("schemas", {})
        spec = CampaignSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        models.update(spec.pop("$defs", {}))
        models["CampaignSpec"] = spec
        app.openapi_schema = schema
    return app.openapi_schema
