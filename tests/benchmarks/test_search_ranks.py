"""Do the early epochs rank the trials: Spearman's correlation and the trial sets it is taken over."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks.search_ranks import early_ranks, ledger_ranks


def trial(config, seed, curve, status="completed"):
    return {"kind": "trial", "config": config, "seed": seed, "status": status, "start_s": 0.0, "end_s": 1.0,
            "budget": 600.0, "epochs": curve, "fitness": curve[-1] if status == "completed" else None}


def trials_of(*curves):
    return pd.DataFrame([trial("async-ga", 0, curve) for curve in curves])


def test_early_ranks_per_epoch_before_the_last():
    # epoch 1 ranks the trials backwards, epoch 2 as the end does
    trials = trials_of([0.3, 0.1, 0.2], [0.2, 0.2, 0.3], [0.1, 0.3, 0.4])
    ranks = early_ranks("these", trials)
    assert ranks.trials == 3
    assert ranks.by_epoch == (pytest.approx(-1.0), pytest.approx(1.0))
    with pytest.raises(ValueError, match="different lengths"):
        early_ranks("mixed", pd.concat([trials, trials_of([0.1, 0.2])]))


def test_any_increasing_relation_ranks_as_one_and_a_decreasing_one_as_minus_one():
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    final = np.exp(10 * x) / np.exp(10)  # not linear in x: ranks, not values, are compared
    ranks = early_ranks("these", trials_of(*([a, b, f] for a, b, f in zip(x, -x ** 3, final))))
    assert ranks.by_epoch == (pytest.approx(1.0), pytest.approx(-1.0))


def test_tied_fitness_shares_its_average_rank_and_a_constant_epoch_ranks_nothing():
    # epoch 1 ranks [1, 2.5, 2.5, 4], the final fitness [1, 3, 2, 4]; centred: [-1.5, 0, 0, 1.5] and
    # [-1.5, 0.5, -0.5, 1.5]; epoch 2 is the same for all
    ranks = early_ranks("ties", trials_of([0.1, 0.5, 0.10], [0.2, 0.5, 0.30], [0.2, 0.5, 0.20], [0.3, 0.5, 0.40]))
    assert ranks.by_epoch[0] == pytest.approx(4.5 / np.sqrt(4.5 * 5.0))
    assert np.isnan(ranks.by_epoch[1])


def test_survivors_of_early_stopping_are_kept_out_of_the_quoted_set(tmp_path):
    unstopped = [trial("classic", 0, [0.1 * i, 0.5 - 0.1 * i]) for i in range(1, 5)]  # epoch 1 ranks backwards
    survivors = [trial("async-ga-median", 0, [0.9, 0.9]), trial("async-ga-median", 0, [0.95, 0.95])]
    stopped = [trial("async-ga-median", 0, [0.05], status="pruned")]
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(json.dumps(r) + "\n" for r in unstopped + survivors + stopped))
    quoted, better, every = ledger_ranks(ledger)
    assert quoted.trials == 4 and quoted.by_epoch == (pytest.approx(-1.0),)
    assert better.trials == 2  # final fitness above the median of the four: 0.4 and 0.3
    assert every.trials == 6 and every.by_epoch[0] > 0  # the two survivors lead at both ends
