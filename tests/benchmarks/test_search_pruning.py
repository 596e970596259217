"""The early-stopping replay of the search benchmark: which trials a rule stops, what it saves."""

import pandas as pd
import pytest

from benchmarks.search_pruning import cost_at, oracle_saving, replay, stop_costs

COSTS = {0: 0.5, 1: 0.75}  # share of a full trial used when stopped after epoch 1 / 2


def trial(start, curve, duration=10.0, status="completed", config="async-ga", seed=0):
    return {"kind": "trial", "config": config, "seed": seed, "status": status, "start_s": start,
            "end_s": start + duration, "epochs": curve, "fitness": curve[-1] if status == "completed" else None}


def campaign(*trials):
    """Ledger rows as `search_report.ledger_trials` reads them."""
    return pd.DataFrame(list(trials))


FIRST_THREE = [trial(0, [0.3, 0.4, 0.5]), trial(10, [0.2, 0.3, 0.4]), trial(20, [0.25, 0.35, 0.45])]


def test_a_trial_below_the_median_of_finished_trials_is_stopped_at_the_first_epoch_judged():
    trials = campaign(*FIRST_THREE, trial(40, [0.1, 0.2, 0.3]), trial(50, [0.35, 0.1, 0.9]))
    from_first = replay(trials, 0.5, 1, COSTS)
    # the 4th stops after epoch 1 (0.1 < 0.25), the 5th passes epoch 1 but stops after epoch 2 (0.1 < 0.35)
    assert from_first.stopped_share == pytest.approx(2 / 5)
    assert from_first.saved_share == pytest.approx((0.5 * 10 + 0.25 * 10) / 50)
    assert from_first.best_stopped  # the 5th would have ended best (0.9)
    from_second = replay(trials, 0.5, 2, COSTS)
    assert from_second.saved_share == pytest.approx(2 * 0.25 * 10 / 50)


def test_only_trials_finished_before_the_epoch_ended_are_the_reference():
    # Started together: when the 4th's first epoch ends (t = 3 + 5), none of the others has finished.
    trials = [trial(0, [0.3, 0.4, 0.5]), trial(1, [0.2, 0.3, 0.4]), trial(2, [0.25, 0.35, 0.45]),
              trial(3, [0.1, 0.2, 0.3])]
    assert replay(campaign(*trials), 0.5, 1, COSTS).stopped_share == 0.0
    # Later, the same trial is judged against all three.
    assert replay(campaign(*trials[:3], trial(20, [0.1, 0.2, 0.3])), 0.5, 1, COSTS).stopped_share == pytest.approx(1 / 4)


def test_a_lower_percentile_stops_fewer():
    trials = campaign(*FIRST_THREE, trial(40, [0.23, 0.34, 0.42]))  # between the 25th percentile and the median
    assert replay(trials, 0.5, 1, COSTS).stopped_share == pytest.approx(1 / 4)
    assert replay(trials, 0.25, 1, COSTS).stopped_share == 0.0


def test_the_oracle_keeps_only_the_trials_that_set_a_new_best():
    trials = campaign(*FIRST_THREE, trial(40, [0.1, 0.2, 0.3]), trial(50, [0.35, 0.1, 0.9]))
    # records in end order: 0.5, then 0.9; the other three are stopped after epoch 1
    assert oracle_saving(trials, 1, COSTS) == pytest.approx(3 * 0.5 * 10 / 50)


def test_stop_costs_are_measured_against_the_same_campaigns_completed_trials():
    trials = campaign(
        trial(0, [0.3, 0.4, 0.5], duration=20), trial(20, [0.3, 0.4, 0.5], duration=20),
        trial(0, [0.3, 0.4, 0.5], duration=40, seed=1),  # seed 1's trials interleaved with seed 0's
        trial(40, [0.1, 0.2], duration=15, status="pruned"), trial(40, [0.1, 0.2], duration=30, status="pruned", seed=1),
        trial(60, [0.1], duration=8, status="pruned"),
        trial(0, [0.1], duration=5, status="pruned", seed=2))  # a campaign without a completed trial: no measure
    # after epoch 1: 8 / 20; after epoch 2: the median of 15 / 20 and 30 / 40
    assert stop_costs(trials) == {0: pytest.approx(0.4), 1: pytest.approx(0.75)}


def test_counting_stopped_trials_keeps_the_bar_from_climbing():
    # Survivors only: the 4th (0.28 after epoch 1) lifts the epoch-1 median to 0.265, so the 6th
    # (0.26) is stopped; counting the stopped 5th (0.1) keeps the median at 0.25 and the 6th goes on.
    trials = campaign(*FIRST_THREE, trial(40, [0.28, 0.38, 0.48]), trial(50, [0.1, 0.2, 0.3]),
                      trial(60, [0.26, 0.39, 0.49]))
    assert replay(trials, 0.5, 1, COSTS).stopped_share == pytest.approx(2 / 6)
    assert replay(trials, 0.5, 1, COSTS, stopped_count=True).stopped_share == pytest.approx(1 / 6)


def test_an_unmeasured_stop_cost_is_interpolated_towards_the_trials_end():
    costs = {1: 0.3, 3: 0.5}  # of a 10-epoch trial (last epoch index 9)
    assert cost_at(costs, 1, 9) == 0.3
    assert cost_at(costs, 2, 9) == pytest.approx(0.4)
    assert cost_at(costs, 6, 9) == pytest.approx(0.5 + 0.5 * 3 / 6)
    assert cost_at(costs, 0, 9) == pytest.approx(0.15)
