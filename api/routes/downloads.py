"""Downloads: only files recorded for the campaign, looked up by name; the client never supplies
a path. `hyp_evolved.yaml` and `evolve.csv` live in the campaign's run folder (its path is in
SQL); everything else is an artefact row (weights, ONNX, engine) whose path the coordinator wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path as PathParam
from fastapi.responses import FileResponse

from api.deps import CampaignDep, StoreDep
from evolver.store import CampaignRecord

router = APIRouter(prefix="/campaigns", tags=["downloads"])

MISSING = {404: {"description": "no such campaign, or the file does not exist (yet)"}}


def _run_folder_file(campaign: CampaignRecord, name: str, media_type: str) -> FileResponse:
    path = Path(campaign.run_dir) / name
    if not path.is_file():
        raise HTTPException(404, f"campaign {campaign.id} has no {name} yet")
    return FileResponse(path, media_type=media_type, filename=name,
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/{campaign_id}/hyp_evolved.yaml", response_class=FileResponse, responses=MISSING)
def hyp_evolved(campaign: CampaignDep) -> FileResponse:
    """The best trial's hyperparameters (YOLOv5 hyp format, with a header comment)."""
    return _run_folder_file(campaign, "hyp_evolved.yaml", "application/yaml")


@router.get("/{campaign_id}/evolve.csv", response_class=FileResponse, responses=MISSING)
def evolve_csv(campaign: CampaignDep) -> FileResponse:
    """One row per completed trial, YOLOv5's evolve.csv columns."""
    return _run_folder_file(campaign, "evolve.csv", "text/csv")


@router.get("/{campaign_id}/artefacts/{name}", response_class=FileResponse, responses=MISSING)
def artefact(campaign: CampaignDep, store: StoreDep,
             name: Annotated[str, PathParam(min_length=1, max_length=200)]) -> FileResponse:
    """A recorded artefact (weights, ONNX, engine) by its name."""
    recorded = {a.name: a for a in store.artefacts(campaign.id)}
    record = recorded.get(name)
    if record is None:
        raise HTTPException(404, f"campaign {campaign.id} has no artefact named {name!r}")
    path = Path(record.path)
    if not path.is_file():
        raise HTTPException(404, f"artefact {name!r} is recorded but its file is gone")
    return FileResponse(path, media_type="application/octet-stream", filename=record.name,
                        headers={"X-Content-Type-Options": "nosniff"})
