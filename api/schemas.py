"""What the REST API returns: public models built from the store's records, never the records.

The JSON shapes are the contract with the dashboard (notes/ISSUE4.md). Floats that are not finite
(a metric stored as NULL comes back as NaN) become null: JSON has no NaN.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from evolver.store import ArtefactRecord, CampaignRecord, EpochRecord, GenerationRecord, TrialRecord, TrialSummary


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def finite_dict(values: dict[str, float]) -> dict[str, float | None]:
    return {key: finite(value) for key, value in values.items()}


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class CampaignLinks(BaseModel):
    self: str
    view: str
    generations: str
    trials: str
    hyp_evolved: str
    evolve_csv: str

    @classmethod
    def of(cls, campaign_id: int) -> CampaignLinks:
        base = f"/campaigns/{campaign_id}"
        return cls(self=base, view=f"{base}/view", generations=f"{base}/generations", trials=f"{base}/trials",
                   hyp_evolved=f"{base}/hyp_evolved.yaml", evolve_csv=f"{base}/evolve.csv")


class CampaignSummary(BaseModel):
    id: int
    name: str
    status: str
    created_at: datetime
    trials_total: int
    trials_finished: int
    trials_running: int
    best_fitness: float | None
    links: CampaignLinks

    @classmethod
    def summary_fields(cls, record: CampaignRecord, counts: TrialSummary) -> dict[str, Any]:
        generations = record.spec.get("generations", 0)
        population = record.spec.get("population", 1)
        return {
            "id": record.id, "name": record.name, "status": record.status, "created_at": _utc(record.created_at),
            "trials_total": int(generations) * int(population),
            "trials_finished": counts.finished, "trials_running": counts.by_status.get("running", 0),
            "best_fitness": finite(counts.best_fitness),
            "links": CampaignLinks.of(record.id),
        }

    @classmethod
    def of(cls, record: CampaignRecord, counts: TrialSummary) -> CampaignSummary:
        return cls(**cls.summary_fields(record, counts))


class ArtefactOut(BaseModel):
    name: str
    kind: str
    size: int
    sha256: str
    trial_number: int | None
    url: str

    @classmethod
    def of(cls, record: ArtefactRecord) -> ArtefactOut:
        return cls(name=record.name, kind=record.kind, size=record.size, sha256=record.sha256,
                   trial_number=record.trial_number,
                   url=f"/campaigns/{record.campaign_id}/artefacts/{quote(record.name, safe='')}")


class CampaignOut(CampaignSummary):
    spec: dict[str, Any]
    job_id: str | None
    error: str | None
    counts: dict[str, int]
    artefacts: list[ArtefactOut]

    @classmethod
    def full(cls, record: CampaignRecord, counts: TrialSummary, artefacts: list[ArtefactRecord]) -> CampaignOut:
        return cls(**cls.summary_fields(record, counts), spec=record.spec, job_id=record.job_id, error=record.error,
                   counts=dict(counts.by_status), artefacts=[ArtefactOut.of(a) for a in artefacts])


class GenerationOut(BaseModel):
    index: int
    best_fitness: float | None
    mean_fitness: float | None
    best_trial: int | None
    closed_at: datetime

    @classmethod
    def of(cls, record: GenerationRecord) -> GenerationOut:
        return cls(index=record.index, best_fitness=finite(record.best_fitness),
                   mean_fitness=finite(record.mean_fitness), best_trial=record.best_trial,
                   closed_at=_utc(record.closed_at))


class TrialOut(BaseModel):
    number: int
    generation: int
    status: str
    attempt: int
    fitness: float | None
    metrics: dict[str, float | None]
    hyp: dict[str, float]
    parents: list[int]
    worker: str | None
    node_ip: str | None
    gpu_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    epochs_done: int
    current_epoch: int | None = Field(None, description="running trials: epochs recorded so far")
    error: str | None

    @classmethod
    def trial_fields(cls, record: TrialRecord, epochs_recorded: int | None, now: datetime) -> dict[str, Any]:
        started, ended = _utc(record.started_at), _utc(record.ended_at)
        duration = None
        if started is not None:
            duration = max(0.0, ((ended or now) - started).total_seconds()) if (ended or record.status == "running") \
                else None
        return {
            "number": record.number, "generation": record.generation, "status": record.status,
            "attempt": record.attempt, "fitness": finite(record.fitness), "metrics": finite_dict(record.metrics),
            "hyp": dict(record.hyp), "parents": list(record.parents), "worker": record.worker,
            "node_ip": record.node_ip, "gpu_id": record.gpu_id, "started_at": started, "ended_at": ended,
            "duration_seconds": duration, "epochs_done": record.epochs_done,
            "current_epoch": epochs_recorded if record.status == "running" else None, "error": record.error,
        }

    @classmethod
    def of(cls, record: TrialRecord, epochs_recorded: int | None, now: datetime) -> TrialOut:
        return cls(**cls.trial_fields(record, epochs_recorded, now))


class TrialPage(BaseModel):
    total: int
    items: list[TrialOut]


class EpochOut(BaseModel):
    epoch: int
    fitness: float | None
    metrics: dict[str, float | None]

    @classmethod
    def of(cls, record: EpochRecord) -> EpochOut:
        return cls(epoch=record.epoch, fitness=finite(record.fitness), metrics=finite_dict(record.metrics))


class TrialDetail(TrialOut):
    epochs: list[EpochOut]


class Health(BaseModel):
    status: str
    database: str
