"""A coordinator that crashes leaves its campaign in a state a user can act on: failed, with the
reason, nothing "running" without a coordinator, nobody holding it; a resume then completes it
with exactly the trials it asked for."""

from __future__ import annotations

import pytest

from evolver import lifecycle
from evolver.coordinator import Coordinator
from tests.evolver.test_coordinator import FAST, make_campaign, run
from workers import SleepTrialTrainer, WorkerPool

pytest.importorskip("ray")


class CrashingAfterThreeResults(Coordinator):
    """The real coordinator with a bug that strikes when its third trial completes."""

    def _observe(self, trial):
        super()._observe(trial)
        if self.tally.counts["completed"] >= 3:
            raise RuntimeError("a bug in the coordinator")


def test_a_crashed_coordinator_leaves_a_failed_campaign_that_resumes(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, name="crash", trainer="sleep", epochs=3, generations=6, population=2,
                               cpu_workers=2)
    pool = WorkerPool(SleepTrialTrainer(min_seconds=0.6, max_seconds=1.2), cpu_workers=2)
    try:
        with pytest.raises(RuntimeError, match="a bug in the coordinator"):
            CrashingAfterThreeResults(store, cid, pool, FAST).run()
    finally:
        pool.shutdown()
    record = store.campaign(cid)
    assert (record.status, record.holder) == ("failed", None)
    assert "the coordinator failed: RuntimeError: a bug in the coordinator" in record.error
    assert not store.trials(cid, statuses=("running", "pending"))  # nothing pretends to run
    assert store.trials(cid, statuses=("cancelled",))  # what was out: cancelled, to run again

    lifecycle.reopen(store, cid)
    outcome = run(store, cid, WorkerPool(SleepTrialTrainer(min_seconds=0.05, max_seconds=0.1), cpu_workers=2))
    trials = store.trials(cid)
    assert outcome.status == "completed" and store.campaign(cid).error is None
    assert [t.number for t in trials] == list(range(12)) and all(t.status == "completed" for t in trials)
