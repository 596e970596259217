"""The coordinator's bookkeeping, without SQL or Ray: rebuilt from stored trials, updated by results."""

from __future__ import annotations

from datetime import UTC, datetime

from evolver.store import TrialRecord
from evolver.tally import CampaignTally


def trial(number: int, status: str, fitness: float | None = None, population: int = 2) -> TrialRecord:
    now = datetime.now(UTC)
    return TrialRecord(campaign_id=1, number=number, generation=number // population, status=status, attempt=1,
                       hyp={}, parents=(), seed=number, worker=None, node_id=None, node_ip=None, gpu_id=None,
                       started_at=now, ended_at=now, metrics={}, fitness=fitness, epochs_done=1, error=None,
                       weights_path=None)


def test_rebuild_counts_what_stays_finished_and_leaves_interrupted_trials_out():
    stored = [trial(0, "completed", 0.3), trial(1, "failed"), trial(2, "completed", 0.5), trial(3, "running"),
              trial(4, "cancelled"), trial(5, "pending")]
    tally = CampaignTally.rebuild(stored, population=2, total=10)
    assert dict(tally.counts) == {"completed": 2, "failed": 1}  # running / cancelled run again; pending waits
    assert dict(tally.finished_in) == {0: 2, 1: 1}
    assert tally.best.number == 2 and tally.next_number == 6 and tally.finished == 3 and not tally.done
    assert tally.may_be_complete(0) and not tally.may_be_complete(1)
    assert not tally.earlier_generations_closed(1)
    tally.closed.add(0)
    assert not tally.may_be_complete(0) and tally.earlier_generations_closed(1)


def test_results_update_counts_best_and_the_generation_label():
    tally = CampaignTally(population=2, total=4)
    assert tally.generation_label(2) == "1/2"
    tally.finish(trial(0, "completed", 0.4))
    tally.finish(trial(1, "pruned"))
    assert tally.generation_label(2) == "2/2" and tally.may_be_complete(0)
    tally.finish(trial(2, "completed", 0.4))  # a tie: the earlier trial stays best
    tally.finish(trial(3, "completed", None))  # no fitness: never best
    assert tally.best.number == 0 and tally.done and tally.counts["completed"] == 3
    assert tally.generation_label(2) == "2/2"  # never past the last generation
