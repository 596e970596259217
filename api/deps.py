"""Dependencies the routes declare: the app's store, settings and launcher, the write guard, and
the campaign a path names (404 when it names none)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.launcher import Launcher
from api.security import token_matches
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

_bearer = HTTPBearer(auto_error=False, description="EVOLVER_API_TOKEN, required by write endpoints when set")


def require_writer(settings: SettingsDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Write endpoints: with a token configured, the request must carry it (401 otherwise)."""
    if settings.api_token is None:
        return
    presented = credentials.credentials if credentials is not None else None
    if not token_matches(presented, settings.api_token.get_secret_value()):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


WriterDep = Annotated[None, Depends(require_writer)]

CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="campaign id")]


def get_campaign(campaign_id: CampaignId, store: StoreDep) -> CampaignRecord:
    try:
        return store.campaign(campaign_id)
    except CampaignNotFound as err:
        raise HTTPException(404, str(err)) from None


CampaignDep = Annotated[CampaignRecord, Depends(get_campaign)]
