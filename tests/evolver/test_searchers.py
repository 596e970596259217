"""Random search, TPE and CMA-ES behind the `Searcher` interface (no Ray: the searchers alone).

A toy fitness with a known optimum stands in for training: what is tested is the searchers'
contract (base first, limits, fixed genes, repeatable seeds, rebuilding from stored trials) and
that the model-based ones learn from what they are told."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evolver.campaign import CampaignSpec
from evolver.searcher import Observation

pytest.importorskip("optuna")

FIXED_ANCHORS = {"anchors": {"gain": 0}}
SEARCHERS = ("random", "tpe", "cmaes")


def _searcher(kind: str, seed: int = 0, **fields):
    return CampaignSpec(searcher=kind, seed=seed, search_space=FIXED_ANCHORS, **fields).build_searcher()


def toy_fitness(hyp: dict[str, float]) -> float:
    """Best at lr0 = 0.003, mosaic = 0.3, scale = 0.2; the other genes do not matter."""
    return -abs(math.log10(hyp["lr0"] / 0.003)) - abs(hyp["mosaic"] - 0.3) - abs(hyp["scale"] - 0.2)


def _campaign(searcher, trials: int) -> list[tuple[dict[str, float], int, float]]:
    rows = []
    for number in range(trials):
        suggestion = searcher.suggest(number)
        fitness = toy_fitness(suggestion.hyp)
        searcher.observe(Observation(number, suggestion.hyp, fitness))
        rows.append((suggestion.hyp, suggestion.seed, fitness))
    return rows


@pytest.mark.parametrize("kind", SEARCHERS)
def test_trial_zero_is_the_base_and_the_rest_stay_within_the_limits(kind):
    spec = CampaignSpec(searcher=kind, hyp={"lr0": 0.02}, search_space={**FIXED_ANCHORS, "mosaic": {"upper": 0.5}})
    base, space = spec.base_hyp(), spec.space()
    rows = _campaign(spec.build_searcher(), 25)
    assert rows[0][0] == base
    for hyp, seed, _ in rows[1:]:
        assert list(hyp) == list(base) and 0 <= seed < 2**31
        for gene in space.genes:
            if gene.free:
                assert gene.lower <= hyp[gene.name] <= gene.upper, (gene.name, hyp[gene.name])
            else:  # gain 0 (anchors, iou_t, ...) keeps the campaign's value
                assert hyp[gene.name] == base[gene.name], gene.name
    assert max(hyp["mosaic"] for hyp, _, _ in rows[1:]) <= 0.5 < base["mosaic"]  # the base itself may lie outside
    assert len({tuple(hyp.values()) for hyp, _, _ in rows}) == 25  # every trial tries something new


@pytest.mark.parametrize("kind", SEARCHERS)
def test_the_same_seed_repeats_the_campaign_and_another_does_not(kind):
    first, again, other = (_campaign(_searcher(kind, seed), 15) for seed in (4, 4, 5))
    assert first == again
    assert [row[0] for row in first[1:]] != [row[0] for row in other[1:]]


def test_random_search_samples_decade_spanning_genes_on_a_log_scale():
    rows = _campaign(_searcher("random"), 400)
    lr0 = np.array([hyp["lr0"] for hyp, _, _ in rows[1:]])  # limits 1e-5 .. 0.1
    below = np.mean(lr0 < 1e-3)  # log-uniform: half the draws below 1e-3; uniform: 1 %
    assert 0.4 < below < 0.6
    mosaic = np.array([hyp["mosaic"] for hyp, _, _ in rows[1:]])  # 0 .. 1, linear
    assert 0.4 < np.mean(mosaic < 0.5) < 0.6


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_model_based_searchers_learn_from_what_they_are_told(kind):
    """After 60 trials the last 20 of TPE / CMA-ES score better on average than random search's,
    over 3 seeds (a sampler that ignored `observe` would score like random search)."""
    def late_mean(searcher_kind: str, seed: int) -> float:
        return float(np.mean([f for _, _, f in _campaign(_searcher(searcher_kind, seed), 60)[40:]]))

    learned = np.mean([late_mean(kind, seed) for seed in range(3)])
    random = np.mean([late_mean("random", seed) for seed in range(3)])
    assert learned > random + 0.2, (learned, random)


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_searcher_rebuilt_from_stored_trials_continues_the_search(kind):
    """A coordinator that restarts observes the stored completed trials into a fresh searcher
    (trials it never asked for): the rebuilt study then knows them and keeps improving."""
    stored = _campaign(_searcher(kind), 60)
    rebuilt = _searcher(kind)
    for number, (hyp, _, fitness) in enumerate(stored):
        rebuilt.observe(Observation(number, hyp, fitness))
    assert len(rebuilt.study.trials) == 60 and rebuilt.study.best_value == max(f for _, _, f in stored)
    later = []
    for number in range(60, 80):
        suggestion = rebuilt.suggest(number)
        later.append(toy_fitness(suggestion.hyp))
        rebuilt.observe(Observation(number, suggestion.hyp, later[-1]))
    assert np.mean(later) > np.mean([f for _, _, f in stored[:20]])


def test_imported_parents_and_diverged_runs():
    searcher = _searcher("tpe")
    searcher.observe(Observation(-1, {"lr0": 0.004, "mosaic": 0.2}, 0.5))  # an imported YOLOv5 row, partial
    assert searcher.study.trials[0].params["lr0"] == pytest.approx(0.004)
    suggestion = searcher.suggest(1)
    searcher.observe(Observation(1, suggestion.hyp, float("nan")))  # diverged: never told
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "RUNNING"]


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_rebuilt_searcher_does_not_replay_the_draws_that_bred_the_stored_trials(kind):
    stored = _campaign(_searcher(kind), 5)  # TPE is still drawing at random this early
    rebuilt = _searcher(kind)
    for number, (hyp, _, fitness) in enumerate(stored):
        rebuilt.observe(Observation(number, hyp, fitness))
    seen = {tuple(hyp.values()) for hyp, _, _ in stored}
    assert not seen & {tuple(rebuilt.suggest(n).hyp.values()) for n in range(5, 10)}
