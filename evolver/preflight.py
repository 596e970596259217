"""Cheap checks before a stored campaign runs: whatever would make its coordinator refuse, found in
SQL in milliseconds, before Ray starts (5-10 s), a model is loaded or a dataset is scanned.

The lifecycle's compare-and-set (`evolver.lifecycle.claim` / `reopen`) stays the authority: these
checks only answer early what it would answer late; a race between the two is still settled there.
"""

from __future__ import annotations

from pathlib import Path

from evolver.campaign import CampaignSpec
from evolver.lifecycle import ENDED, CampaignBusy, LifecycleError
from evolver.store import CampaignRecord, Store


def check_runnable(store: Store, campaign_id: int) -> CampaignRecord:
    """`evolver run --campaign N`: refused now if it has ended (resume continues an unfinished one),
    another live coordinator holds it, or the start weights it names are gone."""
    record = store.campaign(campaign_id)
    if record.status == "completed":
        raise LifecycleError(completed_text(store, record))
    if record.status in ENDED:
        raise LifecycleError(f"campaign {campaign_id} ({record.name}) is {record.status}; "
                             f"`evolver resume {campaign_id}` continues it")
    check_not_held(store, record)
    check_start_weights(record)
    return record


def check_resumable(store: Store, campaign_id: int) -> CampaignRecord:
    """`evolver resume N`: a completed campaign has nothing left to run; its weights must still exist.
    (A campaign held by a live coordinator is `lifecycle.reopen`'s to judge: it waits out a lease
    that may belong to a coordinator that died.)"""
    record = store.campaign(campaign_id)
    if record.status == "completed":
        raise LifecycleError(completed_text(store, record))
    check_start_weights(record)
    return record


def check_not_held(store: Store, record: CampaignRecord) -> None:
    """A running campaign whose lease has not lapsed belongs to its coordinator."""
    if record.status != "running" or record.holder is None:
        return
    left = store.lease_seconds_left(record.id)
    if left is not None and left > 0:
        raise CampaignBusy(f"campaign {record.id} ({record.name}) is already run by {record.holder} (its lease "
                           f"runs {left:.0f}s more and is renewed every second while it lives); "
                           f"`evolver status {record.id}` follows it, `evolver cancel {record.id}` stops it")


def check_start_weights(record: CampaignRecord) -> None:
    """The checkpoint every trial starts from is read by the coordinator first thing: still there?"""
    weights = CampaignSpec.model_validate(record.spec).weights
    if weights and not Path(weights).is_file():
        raise FileNotFoundError(f"campaign {record.id} ({record.name}): weights: no such file: {weights} "
                                "(it was there when the campaign was created)")


def completed_text(store: Store, record: CampaignRecord) -> str:
    """Why a completed campaign has nothing to run, with its counts and what to do instead."""
    spec = CampaignSpec.model_validate(record.spec)
    trials = store.trials(record.id)
    search = sum(t.finished for t in trials if t.stage == "search")
    retrainings = sum(t.finished for t in trials if t.stage == "confirm")
    confirmed = f" and {retrainings} confirmation retrainings" if retrainings else ""
    csv = Path(record.run_dir) / "evolve.csv"
    return (f"campaign {record.id} ({record.name}) is complete: {search}/{spec.total_trials} search trials"
            f"{confirmed} finished, nothing is left to run. `evolver best {record.id}` shows its answer; to search "
            f"further, run a new campaign (more generations or a wider search) and seed it with these trials: "
            f"`evolver create NEW.yaml && evolver import-csv ID {csv}`")
