"""What the REST API returns: public models built from the store's records, never the records.

The JSON shapes are the contract with the dashboard (notes/ISSUE4.md). Floats that are not finite
(a metric stored as NULL comes back as NaN) become null: JSON has no NaN.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from evolver.campaign import ConfirmSpec
from evolver.confirmation import CandidateResult, ConfirmationReport
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
    confirmation: str
    hyp_evolved: str
    evolve_csv: str

    @classmethod
    def of(cls, campaign_id: int) -> CampaignLinks:
        base = f"/campaigns/{campaign_id}"
        return cls(self=base, view=f"{base}/view", generations=f"{base}/generations", trials=f"{base}/trials",
                   confirmation=f"{base}/confirmation", hyp_evolved=f"{base}/hyp_evolved.yaml",
                   evolve_csv=f"{base}/evolve.csv")


class CampaignSummary(BaseModel):
    id: int
    name: str
    status: str
    created_at: datetime
    trials_total: int = Field(description="the search's trials plus the most retrainings its confirmation "
                                          "stage may add (it adds fewer when the search found fewer distinct "
                                          "candidates)")
    trials_finished: int
    trials_running: int
    best_fitness: float | None
    links: CampaignLinks

    @classmethod
    def summary_fields(cls, record: CampaignRecord, counts: TrialSummary) -> dict[str, Any]:
        generations = record.spec.get("generations", 0)
        population = record.spec.get("population", 1)
        confirm = ConfirmSpec.model_validate(record.spec.get("confirm", {}))
        return {
            "id": record.id, "name": record.name, "status": record.status, "created_at": _utc(record.created_at),
            "trials_total": int(generations) * int(population) + confirm.trials(),
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
    stage: Literal["search", "confirm"] = Field(description="bred by the search, or a confirmation retraining")
    split: Literal["train", "val", "test"] = Field(description="the data split its final metrics were scored on")
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
            "number": record.number, "generation": record.generation, "stage": record.stage,
            "split": record.split, "status": record.status,
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


class CandidateOut(BaseModel):
    """One candidate of the confirmation stage: the base, or the best search trial of a distinct
    set of hyperparameters, with its search fitness beside what fresh seeds made of it."""

    label: str = Field(description='"base" or "trial N" (N: the search trial it comes from)')
    is_base: bool
    source_trial: int | None = Field(description="the search trial it comes from (base: its best base trial)")
    search_fitness: float | None = Field(description="that search trial's fitness: one draw, on the split "
                                                     "that selected it")
    hyp: dict[str, float]
    fitnesses: list[float | None] = Field(description="fitness of each completed retraining, on the "
                                                      "confirmation split")
    mean: float | None
    se: float | None = Field(description="standard error of the mean (null below 2 retrainings)")
    n: int = Field(description="completed retrainings")
    planned: int = Field(description="retrainings it gets (one per fresh seed)")
    optimism: float | None = Field(description="search fitness - confirmed mean")
    trials: list[int] = Field(description="numbers of its retraining trials (any status)")

    @classmethod
    def of(cls, result: CandidateResult) -> CandidateOut:
        c = result.candidate
        return cls(label=c.label, is_base=c.is_base, source_trial=c.source_trial,
                   search_fitness=finite(c.search_fitness), hyp=dict(c.hyp),
                   fitnesses=[finite(f) for f in result.fitnesses], mean=finite(result.mean), se=finite(result.se),
                   n=result.n, planned=result.planned, optimism=finite(result.optimism), trials=list(result.trials))


class ConfirmationOut(BaseModel):
    """`GET /campaigns/{id}/confirmation`: the campaign's answer as a mean over fresh seeds on an
    unseen split (evolver/confirmation.py). Only a "confirmed" state has a winner; in every other
    state the search's best trial is a single noisy draw, not a confirmed figure."""

    campaign_id: int
    state: Literal["off", "confirming", "confirmed", "not confirmed"]
    split: str = Field(description="the split the retrainings are scored on")
    split_selected: bool = Field(description="true when that is val, the split that also selected them")
    epochs: int = Field(description="epochs of each retraining")
    seeds: int = Field(description="fresh training seeds per candidate")
    candidates: list[CandidateOut] = Field(description="the base first, then by search rank (empty until the "
                                                       "search has finished)")
    winner: str | None = Field(description="label of the best confirmed mean; only when confirmed")
    base_mean: float | None
    base_se: float | None
    difference_se: float | None = Field(description="(winner mean - base mean) in standard errors")
    spearman: float | None = Field(description="rank agreement of search fitness and confirmed mean")
    raw_best: str | None = Field(description="label of the search's best trial among the candidates")
    raw_best_optimism: float | None = Field(description="its search fitness - its confirmed mean")
    cost_share: float | None = Field(description="the retrainings' share of the campaign's worker-seconds")
    search_seconds: float
    confirm_seconds: float
    summary: list[str] = Field(description="the figures in words, as `evolver best` prints them")

    @classmethod
    def of(cls, campaign_id: int, report: ConfirmationReport) -> ConfirmationOut:
        winner, base, raw_best = report.winner, report.base, report.raw_best
        return cls(
            campaign_id=campaign_id, state=report.state, split=report.split, split_selected=report.split_selected,
            epochs=report.epochs, seeds=report.seeds, candidates=[CandidateOut.of(c) for c in report.candidates],
            winner=None if winner is None else winner.candidate.label,
            base_mean=None if base is None else finite(base.mean), base_se=None if base is None else finite(base.se),
            difference_se=finite(report.difference_se), spearman=finite(report.spearman),
            raw_best=None if raw_best is None else raw_best.candidate.label,
            raw_best_optimism=None if raw_best is None else finite(raw_best.optimism),
            cost_share=finite(report.cost_share), search_seconds=report.search_seconds,
            confirm_seconds=report.confirm_seconds, summary=report.summary_lines())


class Health(BaseModel):
    status: str
    database: str
