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
SEARCHERS = ("random", "tpe", "cmaes", "yolov5-population", "blx")


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
    searcher.observe(Observation(1, suggestion.hyp, float("nan")))  # diverged: a failed run
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE", "FAIL"] and searcher.pending == set()


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_rebuilt_searcher_does_not_replay_the_draws_that_bred_the_stored_trials(kind):
    stored = _campaign(_searcher(kind), 5)  # TPE is still drawing at random this early
    rebuilt = _searcher(kind)
    for number, (hyp, _, fitness) in enumerate(stored):
        rebuilt.observe(Observation(number, hyp, fitness))
    seen = {tuple(hyp.values()) for hyp, _, _ in stored}
    assert not seen & {tuple(rebuilt.suggest(n).hyp.values()) for n in range(5, 10)}


def _free_values(spec: CampaignSpec, hyp: dict[str, float]) -> dict[str, float]:
    return {gene.name: hyp[gene.name] for gene in spec.space().genes if gene.free}


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_base_outside_the_limits_is_trained_but_kept_out_of_the_study(kind):
    """mosaic 1.0 with an upper limit of 0.5: trial 0 trains 1.0, and the study must not learn
    0.5 (what clipping told it) nor anything else for it: it learns exactly the trials it asked for."""
    spec = CampaignSpec(searcher=kind, seed=2, search_space={**FIXED_ANCHORS, "mosaic": {"upper": 0.5}})
    searcher = spec.build_searcher()
    rows = _campaign(searcher, 8)
    assert rows[0][0] == spec.base_hyp() and rows[0][0]["mosaic"] == 1.0
    study = searcher.study.trials
    assert [t.params for t in study] == [_free_values(spec, hyp) for hyp, _, _ in rows[1:]]
    assert [t.value for t in study] == [fitness for _, _, fitness in rows[1:]]
    rebuilt = spec.build_searcher()  # a resumed campaign observes trial 0 from SQL: kept out too
    for number, (hyp, _, fitness) in enumerate(rows):
        rebuilt.observe(Observation(number, hyp, fitness))
    assert [t.params for t in rebuilt.study.trials] == [t.params for t in study]


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_base_inside_the_limits_is_told_as_trained(kind):
    spec = CampaignSpec(searcher=kind, search_space=FIXED_ANCHORS)
    searcher = spec.build_searcher()
    rows = _campaign(searcher, 3)
    assert [t.params for t in searcher.study.trials] == [_free_values(spec, hyp) for hyp, _, _ in rows]


def test_imported_rows_trained_outside_the_space_are_kept_out():
    searcher = _searcher("tpe")  # anchors fixed at the campaign's 3.0; mosaic limits 0..1
    searcher.observe(Observation(-1, {"mosaic": 1.5}, 0.9))  # beyond a limit: not clipped into the study
    searcher.observe(Observation(-2, {"anchors": 4.0}, 0.8))  # another value of a fixed gene
    searcher.observe(Observation(-3, {"mosaic": 0.7}, 0.7))
    assert [(t.params["mosaic"], t.value) for t in searcher.study.trials] == [(0.7, 0.7)]
    with pytest.raises(ValueError, match="unknown hyperparameter.*lr00"):
        searcher.observe(Observation(-4, {"lr00": 0.1}, 0.5))


OUTCOME_STATES = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


def _outcome(number: int) -> str:
    """Trials 1, 4, 7, ... pruned; 2, 5, 8, ... failed; the rest completed."""
    return ("completed", "pruned", "failed")[number % 3]


def _campaign_in_flight(searcher, trials: int, workers: int, kept_out: frozenset[int] = frozenset()
                        ) -> list[Observation]:
    """`workers` trials out at once, each ending as `_outcome` says, told in the order they were
    asked; the study runs all but `kept_out` (trained outside the space) while they are out."""
    told, flying = [], []
    for number in range(trials):
        suggestion = searcher.suggest(number)
        flying.append(Observation(number, suggestion.hyp, toy_fitness(suggestion.hyp), _outcome(number)))
        if len(flying) == workers or number == trials - 1:
            assert searcher.pending == {o.number for o in flying} - kept_out  # TPE's liars while they train
            for observation in flying:
                ended = observation if observation.outcome == "completed" else \
                    Observation(observation.number, observation.hyp, math.nan, observation.outcome)
                searcher.observe(ended)
                told.append(ended)
            flying = []
    return told


def _states(study) -> list[tuple[str, dict[str, float], float | None]]:
    return [(t.state.name, t.params, t.value) for t in study.trials]


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_pruned_and_failed_trials_are_told_in_optunas_states_and_leave_nothing_pending(kind):
    searcher = _searcher(kind)
    told = _campaign_in_flight(searcher, 30, workers=3)
    assert searcher.pending == set()
    assert [t.state.name for t in searcher.study.trials] == [OUTCOME_STATES[_outcome(n)] for n in range(30)]
    assert [t.value for t in searcher.study.trials] == [o.fitness if o.outcome == "completed" else None
                                                         for o in told]
    later = searcher.suggest(30)  # and the sampler goes on from them
    assert searcher.pending == {30} and later.hyp != told[0].hyp


@pytest.mark.parametrize("kind", ("tpe", "cmaes"))
def test_a_rebuilt_study_holds_the_same_trials_in_the_same_states(kind):
    """Resume: the coordinator observes the stored completed, pruned and failed trials (and trial 0
    trained outside the limits) into a fresh searcher; its study equals the one that ran."""
    spec = CampaignSpec(searcher=kind, seed=1, hyp={"scale": 0.95},
                        search_space={**FIXED_ANCHORS, "scale": {"upper": 0.9}})
    ran = spec.build_searcher()
    told = _campaign_in_flight(ran, 24, workers=2, kept_out=frozenset({0}))
    rebuilt = spec.build_searcher()
    for observation in told:
        rebuilt.observe(observation)
    assert _states(rebuilt.study) == _states(ran.study) and rebuilt.pending == set()
    assert len(ran.study.trials) == 23  # trial 0 (scale 0.95, limit 0.9) in neither
