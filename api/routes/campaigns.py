"""Campaigns: submit, list, read, generations, trials, cancel, resume, export the winner.

Reads come from SQL only; writes are the campaign row (create, status) and the launcher call that
starts or stops its coordinator. Nothing here talks to workers.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from starlette.concurrency import run_in_threadpool
from fastapi import APIRouter, HTTPException, Path as PathParam, Query, Request, Response
from pydantic import BaseModel

from api.deps import MAX_ID, CampaignDep, LauncherDep, SettingsDep, StoreDep
from api.launcher import LaunchError
from api.schemas import (
    ArtefactOut,
    CampaignOut,
    CampaignSummary,
    EpochOut,
    GenerationOut,
    TrialDetail,
    TrialOut,
    TrialPage,
)
from api.submission import read_submission, validate_spec
from evolver import lifecycle
from evolver.campaign import CampaignSpec
from evolver.lifecycle import LifecycleError
from evolver.store import TRIAL_STATUSES, CampaignRecord, Store, TrialNotFound, TrialRecord, TrialSummary
from evolver.winner_export import NoWinnerError, ParityFailed, WinnerExportError, run_winner_export

log = logging.getLogger(__name__)

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

TrialSort = Literal["-fitness", "fitness", "number", "-number"]
ExportFormat = Literal["onnx", "engine", "wts"]
TrialStatus = Literal["pending", "running", "completed", "failed", "pruned", "cancelled"]
assert set(TrialStatus.__args__) == set(TRIAL_STATUSES)  # noqa: S101 - the literal mirrors the store

SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CampaignSpec"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["spec"],
                "properties": {"spec": {"type": "string", "format": "binary", "description": "campaign YAML"},
                               "hyp": {"type": "string", "format": "binary",
                                       "description": "YOLOv5 hyp YAML: the campaign's base values"}}}},
        },
    }
}


def campaign_out(store: Store, record: CampaignRecord) -> CampaignOut:
    summary = store.trial_summaries(record.id).get(record.id, TrialSummary(record.id, {}))
    return CampaignOut.full(record, summary, store.artefacts(record.id))


def _fresh_run_dir(project_dir: Path, name: str) -> Path:
    """A new folder project_dir/name (name2, name3, … when taken), created atomically."""
    base = project_dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    path, n = base / name, 2
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, n = base / f"{name}{n}", n + 1


@router.post("", status_code=201, response_model=CampaignOut, openapi_extra=SUBMIT_BODY,
             responses={413: {"description": "body or upload too large"},
                        503: {"description": "stored, but Ray could not start it (status failed)"}})
async def submit_campaign(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                          launcher: LauncherDep) -> CampaignOut:
    """Validate a campaign (JSON spec, or multipart `spec` + optional `hyp` YAML), store it, start it."""
    document, loc, hyp = await read_submission(request, settings)
    # off the event loop: it reads the data yaml and loads the start weights (up to seconds)
    spec = await run_in_threadpool(validate_spec, document, loc, hyp, settings)
    return await run_in_threadpool(_create_and_start, spec, response, settings, store, launcher)


def _create_and_start(spec: CampaignSpec, response: Response, settings, store: Store, launcher) -> CampaignOut:
    run_dir = _fresh_run_dir(settings.project_dir, spec.name)
    try:
        campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(run_dir))
    except BaseException:
        os.rmdir(run_dir)
        raise
    try:
        job_id = launcher.submit(campaign_id)
    except LaunchError as err:
        log.error("campaign %d stored but not started: %s", campaign_id, err)
        lifecycle.launch_failed(store, campaign_id, f"could not start: {err}")
        raise HTTPException(503, f"campaign {campaign_id} was stored but could not be started: {err}") from None
    lifecycle.set_job(store, campaign_id, job_id)
    response.headers["Location"] = f"/campaigns/{campaign_id}"
    return campaign_out(store, store.campaign(campaign_id))


@router.get("", response_model=list[CampaignSummary])
def list_campaigns(store: StoreDep) -> list[CampaignSummary]:
    summaries = store.trial_summaries()
    return [CampaignSummary.of(record, summaries.get(record.id, TrialSummary(record.id, {})))
            for record in store.campaigns()]


@router.get("/{campaign_id}", response_model=CampaignOut, responses={404: {"description": "no such campaign"}})
def get_campaign(campaign: CampaignDep, store: StoreDep) -> CampaignOut:
    return campaign_out(store, campaign)


@router.get("/{campaign_id}/generations", response_model=list[GenerationOut],
            responses={404: {"description": "no such campaign"}})
def list_generations(campaign: CampaignDep, store: StoreDep) -> list[GenerationOut]:
    return [GenerationOut.of(g) for g in store.generations(campaign.id)]


def _epochs_recorded(store: Store, campaign_id: int, trials: list[TrialRecord]) -> dict[int, int]:
    return {t.number: len(store.epochs(campaign_id, t.number)) for t in trials if t.status == "running"}


@router.get("/{campaign_id}/trials", response_model=TrialPage, responses={404: {"description": "no such campaign"}})
def list_trials(campaign: CampaignDep, store: StoreDep,
                status: Annotated[list[TrialStatus] | None, Query(description="only these statuses")] = None,
                sort: TrialSort = "number",
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> TrialPage:
    total, page = store.trials_page(campaign.id, statuses=status or None, sort=sort, limit=limit, offset=offset)
    epochs = _epochs_recorded(store, campaign.id, page)
    now = datetime.now(UTC)
    return TrialPage(total=total, items=[TrialOut.of(t, epochs.get(t.number), now) for t in page])


@router.get("/{campaign_id}/trials/{number}", response_model=TrialDetail,
            responses={404: {"description": "no such campaign or trial"}})
def get_trial(campaign: CampaignDep, store: StoreDep,
              number: Annotated[int, PathParam(ge=0, le=MAX_ID)]) -> TrialDetail:
    try:
        trial = store.trial(campaign.id, number)
        epochs = store.epochs(campaign.id, number)
    except TrialNotFound as err:
        raise HTTPException(404, str(err)) from None
    fields = TrialOut.trial_fields(trial, len(epochs), datetime.now(UTC))
    return TrialDetail(**fields, epochs=[EpochOut.of(e) for e in epochs])


@router.post("/{campaign_id}/cancel", response_model=CampaignOut,
             responses={404: {"description": "no such campaign"}, 409: {"description": "the campaign already ended"}})
def cancel_campaign(campaign: CampaignDep, store: StoreDep, launcher: LauncherDep) -> CampaignOut:
    """Status cancelled in SQL (the coordinator stops its trials within seconds), then the Ray job is
    stopped if it has not ended after a grace period. Cancelling twice is harmless."""
    was = campaign.status
    try:
        cancelled = lifecycle.cancel(store, campaign.id)
    except LifecycleError as err:
        raise HTTPException(409, str(err)) from None
    if was != "cancelled":
        launcher.cancelled(campaign.id, cancelled.job_id)
    return campaign_out(store, cancelled)


@router.post("/{campaign_id}/resume", response_model=CampaignOut,
             responses={404: {"description": "no such campaign"},
                        409: {"description": "the campaign is queued, or a live coordinator runs it"},
                        503: {"description": "Ray could not start it"}})
def resume_campaign(campaign: CampaignDep, store: StoreDep, launcher: LauncherDep) -> CampaignOut:
    """Continue a cancelled, failed or completed campaign, or one whose coordinator died (its lease
    lapsed): queued again with a new job. Completed trials stay; cancelled and interrupted ones run
    again as their next attempt, up to the trial count the campaign asked for. Of two resumes at
    once, one wins and the other gets 409."""
    try:
        lifecycle.reopen(store, campaign.id)
    except LifecycleError as err:
        raise HTTPException(409, str(err)) from None
    try:
        job_id = launcher.submit(campaign.id)
    except LaunchError as err:
        lifecycle.launch_failed(store, campaign.id, f"could not start: {err}")
        raise HTTPException(503, f"campaign {campaign.id} could not be started: {err}") from None
    lifecycle.set_job(store, campaign.id, job_id)
    return campaign_out(store, store.campaign(campaign.id))


class ExportOut(BaseModel):
    """What `POST /campaigns/{id}/export` made: the recorded files (download them by `url`)."""

    campaign_id: int
    trial_number: int
    artefacts: list[ArtefactOut]
    skipped: dict[str, str]  # format -> why it was not built (e.g. engine without GPU / TensorRT)
    parity: str | None


@router.post("/{campaign_id}/export", response_model=ExportOut,
             responses={404: {"description": "no such campaign"},
                        409: {"description": "not running or completed, or no trial with weights yet"},
                        500: {"description": "the export failed (e.g. its ONNX failed the parity check)"}})
def export_campaign_winner(campaign: CampaignDep, store: StoreDep,
                           formats: Annotated[list[ExportFormat] | None, Query(
                               description="formats (repeat the parameter); default: the campaign's exports")] = None,
                           ) -> ExportOut:
    """Export the best trial so far to ONNX / engine / .wts, check the ONNX against torch and record
    the files as artefacts. Runs now, as a Ray task when this server is connected to Ray (else in
    this process: an engine then needs this machine's GPU and is skipped without one)."""
    if campaign.status not in ("running", "completed"):
        raise HTTPException(409, f"campaign {campaign.id} is {campaign.status}; only a running or completed "
                                 f"campaign is exported")
    try:
        done = run_winner_export(store, campaign.id, formats)
    except NoWinnerError as err:
        raise HTTPException(409, str(err)) from None
    except (ParityFailed, WinnerExportError) as err:
        log.error("campaign %d: export failed: %s", campaign.id, err)
        raise HTTPException(500, str(err).splitlines()[0]) from None
    return ExportOut(campaign_id=done.campaign_id, trial_number=done.trial_number,
                     artefacts=[ArtefactOut.of(a) for a in done.artefacts], skipped=dict(done.skipped),
                     parity=done.parity)
