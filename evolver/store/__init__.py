"""SQL persistence of campaigns, generations, trials and artefacts (SQLite or PostgreSQL).

Use `Store.open(url)`; it creates or upgrades the schema through Alembic. Everything it returns
is a frozen record from `records`, never an ORM row.
"""

from .errors import (
    CampaignNotFound,
    InvalidInput,
    StoreError,
    TrialAlreadyFinished,
    TrialNotFound,
)
from .records import (
    ACTIVE_TRIAL_STATUSES,
    CAMPAIGN_STATUSES,
    FINISHED_TRIAL_STATUSES,
    TRIAL_STATUSES,
    ArtefactRecord,
    CampaignRecord,
    EpochRecord,
    GenerationRecord,
    ImportedParent,
    Placement,
    TrialRecord,
    TrialSummary,
)
from .store import Store

__all__ = [
    "ACTIVE_TRIAL_STATUSES",
    "CAMPAIGN_STATUSES",
    "FINISHED_TRIAL_STATUSES",
    "TRIAL_STATUSES",
    "ArtefactRecord",
    "CampaignNotFound",
    "CampaignRecord",
    "EpochRecord",
    "GenerationRecord",
    "ImportedParent",
    "InvalidInput",
    "Placement",
    "Store",
    "StoreError",
    "TrialAlreadyFinished",
    "TrialNotFound",
    "TrialRecord",
    "TrialSummary",
]
