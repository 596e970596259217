"""A campaign's confirmation stage: the retrained candidates and the base, their confirmed means
beside their search fitness, and whether the answer is confirmed (evolver/confirmation.py).

Read from SQL only, like every campaign read: the report is a pure function of the campaign's
spec, status and stored trials.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CampaignDep, StoreDep
from api.schemas import ConfirmationOut
from evolver.confirmation import campaign_report

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.get("/{campaign_id}/confirmation", response_model=ConfirmationOut,
            responses={404: {"description": "no such campaign"}})
def get_confirmation(campaign: CampaignDep, store: StoreDep) -> ConfirmationOut:
    """The confirmation report. Until its state is "confirmed" there is no winner, and the search's
    best trial is one noisy draw on the split that selected it: not a final figure."""
    report = campaign_report(campaign, store.trials(campaign.id))
    return ConfirmationOut.of(campaign.id, report)
