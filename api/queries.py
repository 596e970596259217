"""Read-only reporting queries the store has no call for: per-campaign aggregates of the trials
table in one statement, so listing campaigns or scraping /metrics costs one round trip however
many campaigns and trials there are (the store's `trials()` loads every trial's parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from api.schemas import TrialCounts
from evolver.store import Store
from evolver.store.models import Trial

TRIALS = Trial.__table__


@dataclass(frozen=True)
class Throughput:
    finished: int
    first_started: datetime | None
    last_ended: datetime | None


def trial_counts(store: Store, campaign_id: int | None = None) -> dict[int, TrialCounts]:
    """Trials by status and best completed fitness, per campaign (campaigns without trials absent)."""
    where = [] if campaign_id is None else [TRIALS.c.campaign_id == campaign_id]
    by_status = select(TRIALS.c.campaign_id, TRIALS.c.status, func.count()).where(*where).group_by(
        TRIALS.c.campaign_id, TRIALS.c.status)
    best = select(TRIALS.c.campaign_id, func.max(TRIALS.c.fitness)).where(
        TRIALS.c.status == "completed", *where).group_by(TRIALS.c.campaign_id)
    counts: dict[int, TrialCounts] = {}
    with store.engine.connect() as conn:
        for cid, status, n in conn.execute(by_status):
            counts.setdefault(cid, TrialCounts()).by_status[status] = n
        for cid, fitness in conn.execute(best):
            counts.setdefault(cid, TrialCounts()).best_fitness = fitness
    return counts


def throughput(store: Store) -> dict[int, Throughput]:
    """Finished trials and the span they ran in, per campaign (for trials per hour)."""
    query = select(TRIALS.c.campaign_id, func.count(TRIALS.c.ended_at), func.min(TRIALS.c.started_at),
                   func.max(TRIALS.c.ended_at)).where(
        TRIALS.c.status.in_(("completed", "failed", "pruned", "cancelled"))).group_by(TRIALS.c.campaign_id)
    with store.engine.connect() as conn:
        return {cid: Throughput(n, _utc(first), _utc(last)) for cid, n, first, last in conn.execute(query)}


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
