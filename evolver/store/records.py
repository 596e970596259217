"""What the store hands out: frozen snapshots of rows, never live ORM objects.

Callers (coordinator, API, CLI) keep these records around and pass them between threads; a
snapshot cannot lazily load, expire or write back, so nothing outside the store can change SQL by
accident. Dict fields are fresh copies made for each record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TRIAL_STATUSES = ("pending", "running", "completed", "failed", "pruned", "cancelled")
ACTIVE_TRIAL_STATUSES = ("pending", "running")
FINISHED_TRIAL_STATUSES = ("completed", "failed", "pruned", "cancelled")
TRIAL_STAGES = ("search", "confirm")  # bred by the searcher / a confirmation retraining
DATA_SPLITS = ("train", "val", "test")
CAMPAIGN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    status: str
    spec: dict
    run_dir: str
    job_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    holder: str | None = None  # the coordinator that holds it (evolver.lifecycle), until lease_expires_at
    lease_expires_at: datetime | None = None


@dataclass(frozen=True)
class Placement:
    """Where a trial runs: the worker, its node and its GPU (Ray's ids, comma-separated; None on a
    CPU worker). Checked once, here, with the limits of the trial columns; an invalid one raises
    `InvalidInput` and never reaches SQL."""

    worker: str
    node_id: str | None
    node_ip: str | None
    gpu_id: str | None

    def __post_init__(self) -> None:
        from evolver.store import checks  # checks imports this module's status names

        checks.text(self.worker, "worker", 200)
        checks.optional_text(self.node_id, "node_id", 200)
        checks.optional_text(self.node_ip, "node_ip", 64)
        checks.optional_text(self.gpu_id, "gpu_id", 64)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as of its current attempt (location, times and metrics belong to that attempt)."""

    campaign_id: int
    number: int
    generation: int
    status: str
    attempt: int
    hyp: dict[str, float]
    parents: tuple[int, ...]
    seed: int
    worker: str | None
    node_id: str | None
    node_ip: str | None
    gpu_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    metrics: dict[str, float]
    fitness: float | None
    epochs_done: int
    error: str | None
    weights_path: str | None
    stage: str = "search"  # TRIAL_STAGES
    split: str = "val"  # the split its final metrics were scored on

    @property
    def finished(self) -> bool:
        """Finished trials are frozen in SQL: no later call may change them."""
        return self.status in FINISHED_TRIAL_STATUSES


@dataclass(frozen=True)
class EpochRecord:
    number: int
    attempt: int
    epoch: int
    metrics: dict[str, float]
    fitness: float | None


@dataclass(frozen=True)
class GenerationRecord:
    """A closed generation; best / mean are over its completed trials (None when none completed)."""

    campaign_id: int
    index: int
    best_fitness: float | None
    mean_fitness: float | None
    best_trial: int | None
    closed_at: datetime
    size: int = 0
    completed: int = 0


@dataclass(frozen=True)
class TrialSummary:
    """A campaign's trials in aggregate: counts by status, best completed fitness, and the span
    the finished ones ran in (for trials per hour)."""

    campaign_id: int
    by_status: dict[str, int]
    best_fitness: float | None = None
    first_started: datetime | None = None  # of the finished trials
    last_ended: datetime | None = None

    @property
    def finished(self) -> int:
        return sum(n for status, n in self.by_status.items() if status in FINISHED_TRIAL_STATUSES)


@dataclass(frozen=True)
class ImportedParent:
    index: int
    hyp: dict[str, float]
    metrics: dict[str, float]
    fitness: float


@dataclass(frozen=True)
class ArtefactRecord:
    id: int
    campaign_id: int
    trial_number: int | None
    name: str
    kind: str
    path: str
    size: int
    sha256: str
    created_at: datetime
