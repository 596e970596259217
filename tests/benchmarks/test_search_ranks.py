"""Do the early epochs rank the trials: Spearman's correlation and the trial sets it is taken over."""

import json

import numpy as np
import pytest

from benchmarks.search_ranks import average_ranks, early_ranks, ledger_ranks, spearman


def test_equal_values_share_the_mean_of_their_ranks():
    assert average_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_spearman_is_one_for_any_increasing_relation_and_minus_one_for_a_decreasing_one():
    x = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    assert spearman(x, np.exp(10 * x)) == pytest.approx(1.0)
    assert spearman(x, -x ** 3) == pytest.approx(-1.0)


def test_spearman_with_ties_is_the_pearson_correlation_of_average_ranks():
    # ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4]; centred: [-1.5, 0, 0, 1.5] and [-1.5, 0.5, -0.5, 1.5]
    assert spearman([1, 2, 2, 3], [10, 30, 20, 40]) == pytest.approx(4.5 / np.sqrt(4.5 * 5.0))


def test_spearman_refuses_what_it_cannot_rank():
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1], [1])
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def trial(config, seed, curve, status="completed"):
    return {"kind": "trial", "config": config, "seed": seed, "status": status, "start_s": 0.0, "end_s": 1.0,
            "budget": 600.0, "epochs": curve, "fitness": curve[-1] if status == "completed" else None}


def test_early_ranks_per_epoch_before_the_last():
    # epoch 1 ranks the trials backwards, epoch 2 as the end does
    trials = [trial("async-ga", 0, [0.3, 0.1, 0.2]), trial("async-ga", 0, [0.2, 0.2, 0.3]),
              trial("async-ga", 0, [0.1, 0.3, 0.4])]
    ranks = early_ranks("these", trials)
    assert ranks.trials == 3
    assert ranks.by_epoch == (pytest.approx(-1.0), pytest.approx(1.0))
    with pytest.raises(ValueError, match="different lengths"):
        early_ranks("mixed", trials + [trial("async-ga", 0, [0.1, 0.2])])


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
