"""YOLOv5 master's population GA: its operators on hand-worked cases, then the searcher (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from evolver.campaign import CampaignSpec
from evolver.population_ga import (
    PopulationGASettings,
    PopulationSearcher,
    elite_rows,
    selection_pool,
    single_point_crossover,
    tournament_winner,
    uniform_mutation,
)
from evolver.searcher import Observation
from evolver.space import AUGMENTATION_GENES, SearchSpace
from yolo.hyp import Hyperparameters

BASE = Hyperparameters().to_dict()


@pytest.mark.parametrize(("generation", "population", "expected"), [
    # YOLOv5 master over G = 10 generations of 50: elite 2 + int(3 g / 10), tournament
    # max(2, int(10 - g)), crossover max(0.5, 1 - g / 10), mutation max(0.01, 0.5 - g / 10).
    (0, 50, (2, 10, 1.0, 0.5)),
    (3, 50, (2, 7, 0.7, 0.2)),
    (4, 50, (3, 6, 0.6, 0.1)),
    (5, 50, (3, 5, 0.5, 0.01)),
    (7, 50, (4, 3, 0.5, 0.01)),
    (8, 50, (4, 2, 0.5, 0.01)),
    (9, 50, (4, 2, 0.5, 0.01)),
    (0, 4, (2, 4, 1.0, 0.5)),  # a tournament is never larger than the population
    (9, 3, (3, 2, 0.5, 0.01)),  # nor the elite
])
def test_schedules_follow_yolov5_master(generation, population, expected):
    rates = PopulationGASettings().rates(generation, 10, population)
    assert (rates.elite, rates.tournament) == expected[:2]
    assert rates.crossover == pytest.approx(expected[2]) and rates.mutation == pytest.approx(expected[3])


def test_settings_refuse_schedules_that_run_the_wrong_way():
    for field, value in (("elite", (5, 2)), ("tournament", (2, 10)), ("crossover", (0.5, 1.0)),
                         ("mutation", (0.5, 1.5)), ("tournament", (3, 0))):
        with pytest.raises(ValidationError, match=field):
            PopulationGASettings(**{field: value})


def test_a_tournament_returns_the_fittest_of_the_rows_it_drew():
    fitness = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    for seed in range(20):
        entrants = np.random.default_rng(seed).choice(5, size=3, replace=False)
        assert tournament_winner(np.random.default_rng(seed), fitness, 3) == entrants[np.argmax(fitness[entrants])]
    assert {tournament_winner(np.random.default_rng(s), fitness, 5) for s in range(10)} == {3}  # all drawn: the best
    assert tournament_winner(np.random.default_rng(0), fitness, 50) == 3  # larger than the rows: all of them


def test_a_tournament_tie_goes_to_the_row_drawn_first():
    fitness = np.array([0.4, 0.4, 0.4])
    for seed in range(10):
        first = np.random.default_rng(seed).choice(3, size=2, replace=False)[0]
        assert tournament_winner(np.random.default_rng(seed), fitness, 2) == first


def test_elite_rows_are_the_fittest_and_ties_keep_the_earlier_row():
    assert elite_rows(np.array([0.1, 0.5, 0.5, 0.3]), 2) == [1, 2]
    assert elite_rows(np.array([0.1, 0.5, 0.5, 0.3]), 3) == [1, 2, 3]
    assert elite_rows(np.array([0.1]), 3) == [0]


def test_the_pool_holds_tournament_winners_then_the_elite():
    fitness = np.array([0.1, 0.5, 0.3, 0.9])
    # Tournaments over every row always pick the best: 5 - 2 winners, all row 3, then the elite 3, 1.
    assert selection_pool(np.random.default_rng(0), fitness, 5, 2, 4) == [3, 3, 3, 3, 1]
    pool = selection_pool(np.random.default_rng(1), fitness, 6, 0, 1)  # size-1 tournaments: any row
    assert len(pool) == 6 and set(pool) <= {0, 1, 2, 3}
    assert selection_pool(np.random.default_rng(0), fitness, 2, 5, 2) == [3, 1]  # the elite fills it


def test_single_point_crossover_cuts_between_the_first_and_the_last_gene():
    first, second = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0])
    points = set()
    for seed in range(200):
        point = int(np.random.default_rng(seed).integers(1, 4))
        child, drawn = single_point_crossover(np.random.default_rng(seed), first, second)
        assert drawn == point
        assert child.tolist() == first[:point].tolist() + second[point:].tolist()
        points.add(point)
    assert points == {1, 2, 3}  # never 0 (all second) nor 4 (all first)


def test_uniform_mutation_moves_chosen_genes_by_at_most_the_step_and_clamps():
    genes, lowers, uppers = np.array([0.5, 0.95, 0.02]), np.zeros(3), np.ones(3)
    assert uniform_mutation(np.random.default_rng(0), genes, 0.0, 0.1, lowers, uppers).tolist() == genes.tolist()
    for seed in range(50):
        check = np.random.default_rng(seed)
        moved, shifts = check.random(3) < 0.5, check.uniform(-0.1, 0.1, 3)
        child = uniform_mutation(np.random.default_rng(seed), genes, 0.5, 0.1, lowers, uppers)
        expected = np.where(moved, np.clip(genes + shifts, 0.0, 1.0), genes)
        assert child.tolist() == expected.tolist()
        assert (np.abs(child - genes) <= 0.1 + 1e-12).all() and ((0 <= child) & (child <= 1)).all()


def _observe_all(searcher, numbers_and_fitness, hyps):
    for number, fitness in numbers_and_fitness:
        searcher.observe(Observation(number, hyps[number], fitness))


def _spec(**fields) -> CampaignSpec:
    return CampaignSpec(searcher="yolov5-population", **fields)


def test_default_is_fifty_per_generation_and_the_augmentation_genes_only():
    spec = _spec()
    assert spec.population == 50
    free = {gene.name for gene in spec.space().genes if gene.free}
    assert free == set(AUGMENTATION_GENES)
    widened = _spec(search_space={"lr0": {"gain": 1}}).space()
    assert {gene.name for gene in widened.genes if gene.free} == set(AUGMENTATION_GENES) | {"lr0"}
    with pytest.raises(ValidationError, match="population"):
        _spec(population=1)
    with pytest.raises(ValidationError, match="start_population"):
        CampaignSpec(searcher="ga", start_population="pop.yaml")


def test_generation_zero_trains_the_base_then_the_start_population_then_uniform_draws():
    start = [{"hsv_h": 0.02, "mosaic": 0.25, "lr0": 0.05}, {"degrees": 99.0}]  # lr0 is fixed; degrees > 45
    searcher = PopulationSearcher(SearchSpace.augmentation_only(), BASE, 0, population=5, generations=3,
                                  start_population=start)
    hyps = [searcher.suggest(n).hyp for n in range(5)]
    assert hyps[0] == BASE
    assert hyps[1] == {**BASE, "hsv_h": 0.02, "mosaic": 0.25}  # a fixed gene keeps the campaign's value
    assert hyps[2] == {**BASE, "degrees": 45.0}  # clamped to the limit
    space = SearchSpace.augmentation_only()
    for hyp in hyps[3:]:
        for gene in space.genes:
            if gene.free:
                assert gene.lower <= hyp[gene.name] <= gene.upper
            else:
                assert hyp[gene.name] == BASE[gene.name], gene.name
        assert hyp != BASE
    assert all(searcher.suggest(n).parents == () for n in range(5))


def test_children_breed_from_the_latest_population_of_scored_trials():
    searcher = PopulationSearcher(SearchSpace.augmentation_only(), BASE, 3, population=3, generations=4)
    hyps = {n: searcher.suggest(n).hyp for n in range(6)}
    # Generation 0 and 1 finished (trial 4 failed): the window is the 3 latest scored, 5, 3, 2,
    # though 0 and 1 scored best.
    _observe_all(searcher, [(0, 0.9), (1, 0.8), (2, 0.3), (3, 0.4), (5, 0.6)], hyps)
    searcher.observe(Observation(4, hyps[4], float("nan"), "failed"))
    window = {2, 3, 5}
    for number in range(6, 30):
        suggestion = searcher.suggest(number)
        assert suggestion.parents and set(suggestion.parents) <= window
        for name in AUGMENTATION_GENES:  # crossover and ±0.1 steps: never far outside the parents' span
            values = [hyps[p][name] for p in window]
            assert min(values) - 0.1 - 1e-9 <= suggestion.hyp[name] <= max(values) + 0.1 + 1e-9


def test_children_depend_on_what_finished_not_on_the_order_it_was_told():
    space = SearchSpace.augmentation_only()
    first = PopulationSearcher(space, BASE, 7, population=4, generations=5)
    hyps = {n: first.suggest(n).hyp for n in range(8)}
    scores = [(n, 0.1 * ((n * 7) % 5)) for n in range(8)]
    _observe_all(first, scores, hyps)
    rebuilt = PopulationSearcher(space, BASE, 7, population=4, generations=5)  # a resumed coordinator
    _observe_all(rebuilt, list(reversed(scores)), hyps)
    assert [first.suggest(n) for n in range(8, 16)] == [rebuilt.suggest(n) for n in range(8, 16)]
    other_seed = PopulationSearcher(space, BASE, 8, population=4, generations=5)
    _observe_all(other_seed, scores, hyps)
    assert [s.hyp for s in (other_seed.suggest(n) for n in range(8, 16))] != \
        [s.hyp for s in (first.suggest(n) for n in range(8, 16))]


def test_late_generations_keep_the_elite_in_play_and_mutate_rarely():
    """At g >= G/2 the mutation rate is 0.01 and crossover 0.5: most children copy genes of
    the window's rows exactly, so the best row's values keep appearing."""
    space = SearchSpace.augmentation_only()
    searcher = PopulationSearcher(space, BASE, 0, population=6, generations=4)
    hyps = {n: searcher.suggest(n).hyp for n in range(18)}
    _observe_all(searcher, [(n, 0.01 * n) for n in range(18)], hyps)  # the latest are the best
    children = [searcher.suggest(n) for n in range(18, 24)]  # generation 3 of 4
    window_values = {(name, hyps[p][name]) for p in range(12, 18) for name in AUGMENTATION_GENES}
    copied = sum((name, c.hyp[name]) in window_values for c in children for name in AUGMENTATION_GENES)
    assert copied >= 0.9 * len(children) * len(AUGMENTATION_GENES)


def test_a_start_population_larger_than_generation_zero_is_cut_and_says_so(caplog):
    start = [{"hsv_h": 0.01 * (i + 1)} for i in range(4)]
    with caplog.at_level("WARNING", logger="evolver.population_ga"):
        searcher = PopulationSearcher(SearchSpace.augmentation_only(), BASE, 0, population=3, generations=2,
                                      start_population=start)
    assert "holds 4 individuals" in caplog.text and "population: 5 would train them all" in caplog.text
    assert [searcher.suggest(n).hyp["hsv_h"] for n in (1, 2)] == [0.01, 0.02]
    assert searcher.suggest(3).hyp["hsv_h"] not in (0.03, 0.04)  # generation 1 breeds
