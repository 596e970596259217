"""Dependencies the routes declare: the app's store, settings and launcher, the bearer scheme (for
OpenAPI), and the campaign a path names (404 when it names none)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPBearer

from api.launcher import Launcher
from api.settings import ApiSettings
from evolver.store import CampaignNotFound, CampaignRecord, Store

MAX_ID = 2**31 - 1  # ids and trial numbers are 32-bit in SQL: larger path values are simply absent


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_launcher(request: Request) -> Launcher:
    return request.app.state.launcher


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]

# The token itself is checked by api.token_guard, before routing and the read cache; this scheme,
# declared on the guarded routers, only marks their operations in OpenAPI (/docs shows the lock).
bearer_scheme = HTTPBearer(auto_error=False, description="EVOLVER_API_TOKEN: when the server has one, every route "
                           "but /healthz, /metrics and the dashboard's pages and static files needs it")

CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="campaign id")]


def get_campaign(campaign_id: CampaignId, store: StoreDep) -> CampaignRecord:
    try:
        return store.campaign(campaign_id)
    except CampaignNotFound as err:
        raise HTTPException(404, str(err)) from None


CampaignDep = Annotated[CampaignRecord, Depends(get_campaign)]
