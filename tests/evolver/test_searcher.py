from __future__ import annotations

import numpy as np
import pytest

from evolver.searcher import GeneticSearcher, Observation
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

BASE = Hyperparameters().to_dict()
SPACE = SearchSpace.default()


def _observations(count: int, seed: int = 0) -> list[Observation]:
    """Finished trials with distinct hyps (mutations of the base) and distinct fitnesses."""
    searcher = GeneticSearcher(SPACE, BASE, seed=seed)
    rng = np.random.default_rng(seed)
    return [Observation(n, searcher.suggest(n + 1).hyp, float(rng.random())) for n in range(count)]


def test_trial_zero_is_base_and_later_trials_mutate_it():
    searcher = GeneticSearcher(SPACE, {"lr0": 0.02}, seed=3)  # a partial hyp takes YOLOv5's defaults
    first = searcher.suggest(0)
    assert first.hyp == {**BASE, "lr0": 0.02} and first.parents == ()
    assert list(first.hyp) == list(BASE)
    second = searcher.suggest(1)
    assert second.parents == () and second.hyp != first.hyp
    assert list(second.hyp) == list(BASE)
    assert all(type(value) is float for value in second.hyp.values())
    Hyperparameters.from_dict(second.hyp)  # loads as-is
    # Trial 0 is the base even once trials have finished.
    searcher.observe(Observation(1, second.hyp, 0.5))
    assert searcher.suggest(0).hyp == first.hyp


def test_children_come_from_observed_top_n():
    observations = _observations(12)
    fitness_of = {o.number: o.fitness for o in observations}
    top5 = sorted(fitness_of, key=fitness_of.get, reverse=True)[:5]
    single = GeneticSearcher(SPACE, BASE, seed=1)
    weighted = GeneticSearcher(SPACE, BASE, seed=1, parent_selection="weighted")
    for observation in observations:
        single.observe(observation)
        weighted.observe(observation)
    chosen = set()
    for number in range(20, 80):
        suggestion = single.suggest(number)
        assert len(suggestion.parents) == 1 and suggestion.parents[0] in top5
        chosen.add(suggestion.parents[0])
        child = SPACE.vector(suggestion.hyp)
        assert np.all((SPACE.lowers <= child) & (child <= SPACE.uppers))
        assert weighted.suggest(number).parents == tuple(top5)
    assert len(chosen) >= 3  # drawn, not always the best


def test_same_seed_repeats_different_seed_differs_order_irrelevant():
    observations = _observations(8)

    def run(seed, ordered):
        searcher = GeneticSearcher(SPACE, BASE, seed=seed)
        out = [searcher.suggest(n) for n in range(3)]
        for observation in ordered:
            searcher.observe(observation)
        return out + [searcher.suggest(n) for n in range(3, 15)]

    first = run(42, observations)
    assert first == run(42, observations)
    assert first == run(42, observations[::-1])  # arrival order does not matter, only the set
    other = run(43, observations)
    assert [s.hyp for s in other[1:]] != [s.hyp for s in first[1:]]
    assert len({s.seed for s in first}) == len(first)  # per-trial training seeds
    assert all(0 <= s.seed < 2**31 - 1 for s in first)


def test_fixed_genes_stay_at_base_even_from_imported_parents():
    base = {**BASE, "fl_gamma": 1.5}
    searcher = GeneticSearcher(SPACE, base, seed=0, parent_selection="weighted")
    imported = {**BASE, "fl_gamma": 0.0, "iou_t": 0.3}
    del imported["anchors"]  # old YOLOv5 files may lack keys: the base fills them
    searcher.observe(Observation(-1, imported, 0.9))
    searcher.observe(Observation(-2, {**imported, "lr0": 0.02}, 0.8))
    suggestion = searcher.suggest(5)
    assert suggestion.parents == (-1, -2)
    assert suggestion.hyp["fl_gamma"] == 1.5 and suggestion.hyp["iou_t"] == BASE["iou_t"]


def test_observe_replaces_ignores_nonfinite_and_rejects_unknown():
    searcher = GeneticSearcher(SPACE, BASE, seed=0)
    searcher.observe(Observation(3, BASE, 0.5))
    searcher.observe(Observation(3, BASE, 0.7))  # re-observing (resume) replaces
    searcher.observe(Observation(4, BASE, float("nan")))
    assert searcher.suggest(9).parents == (3,)
    with pytest.raises(ValueError, match="lr00"):
        searcher.observe(Observation(5, {"lr00": 0.1}, 0.5))


@pytest.mark.parametrize("kwargs, named", [
    ({"parent_selection": "best"}, "parent_selection"),
    ({"seed": -1}, "seed"),
    ({"top_n": 0}, "top_n"),
    ({"mutation_probability": 0.0}, "mutation_probability"),
    ({"sigma": 0.0}, "sigma"),
])
def test_bad_settings_rejected(kwargs, named):
    with pytest.raises(ValueError, match=named):
        GeneticSearcher(SPACE, BASE, **{"seed": 0, **kwargs})


def test_bad_base_and_number_rejected():
    with pytest.raises(ValueError, match="lr00"):
        GeneticSearcher(SPACE, {"lr00": 0.1}, seed=0)
    with pytest.raises(ValueError):
        GeneticSearcher(SPACE, BASE, seed=0).suggest(-1)
    frozen = SPACE.with_overrides({name: {"gain": 0.0} for name in SPACE.names})
    with pytest.raises(ValueError, match="gain"):
        GeneticSearcher(frozen, BASE, seed=0)



def test_the_parent_pool_grows_with_the_workers_when_asked():
    observations = _observations(40)
    ranked = [o.number for o in sorted(observations, key=lambda o: -o.fitness)]

    def parents_seen(searcher, workers: int) -> set[int]:
        searcher.workers_changed(workers)
        return {p for n in range(100, 400) for p in searcher.suggest(n).parents}

    fixed = GeneticSearcher(SPACE, BASE, seed=2)
    growing = GeneticSearcher(SPACE, BASE, seed=2, parents_per_worker=0.25)
    for searcher in (fixed, growing):
        for o in observations:
            searcher.observe(o)
    assert parents_seen(fixed, 64) <= set(ranked[:5])  # YOLOv5's pool whatever the cluster
    assert parents_seen(growing, 64) <= set(ranked[:16]) and parents_seen(growing, 64) - set(ranked[:5])
    assert parents_seen(growing, 8) <= set(ranked[:5])  # ceil(0.25 * 8) = 2 < top_n: the floor holds
    weighted = GeneticSearcher(SPACE, BASE, seed=2, parent_selection="weighted", parents_per_worker=0.5)
    for o in observations:
        weighted.observe(o)
    weighted.workers_changed(20)
    assert set(weighted.suggest(100).parents) == set(ranked[:10])  # the weighted mean of the 10 best
