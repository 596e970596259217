"""Ultralytics' BLX-α tuner: its operators on hand-worked cases, then the searcher (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from evolver.blx_search import (
    BLXSearcher,
    BLXSettings,
    blx_crossover,
    draw_parents,
    fitness_weights,
    lognormal_factors,
)
from evolver.searcher import Observation
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

BASE = Hyperparameters().to_dict()
SPACE = SearchSpace.default().with_overrides({"anchors": {"gain": 0}})


@pytest.mark.parametrize(("number", "sigma"), [(0, 0.2), (75, 0.175), (150, 0.15), (300, 0.1), (5000, 0.1)])
def test_sigma_falls_from_point_two_to_point_one_over_300_trials(number, sigma):
    assert BLXSettings().sigma_at(number) == pytest.approx(sigma)


def test_settings_refuse_a_rising_sigma():
    with pytest.raises(ValidationError, match="sigma"):
        BLXSettings(sigma=(0.1, 0.2))


def test_weights_shift_fitness_above_zero_and_fall_back_to_equal():
    assert fitness_weights(np.array([0.1, 0.3])) == pytest.approx([1e-6, 0.2 + 1e-6])
    assert fitness_weights(np.array([0.5, 0.5])) == pytest.approx([1e-6, 1e-6])
    assert fitness_weights(np.array([0.5, np.inf])).tolist() == [1.0, 1.0]


def test_parents_are_drawn_with_replacement_in_proportion_to_their_weight():
    rows = draw_parents(np.random.default_rng(0), np.array([0.0, 1.0, 3.0]), 30_000)
    shares = np.bincount(rows, minlength=3) / rows.size
    assert shares == pytest.approx([0.0, 0.25, 0.75], abs=0.01)  # weights 1e-6, 1, 3


def test_blx_child_lies_within_alpha_beyond_the_parents_span():
    parents = np.array([[0.0, 10.0, 1.0], [2.0, 10.0, 3.0], [1.0, 10.0, 2.0]])
    children = np.array([blx_crossover(np.random.default_rng(seed), parents, 0.2) for seed in range(2000)])
    assert children[:, 0].min() >= -0.4 and children[:, 0].max() <= 2.4  # [0, 2] widened by 0.2 x 2
    assert children[:, 0].min() < -0.3 and children[:, 0].max() > 2.3  # and reaches out there
    assert (children[:, 1] == 10.0).all()  # parents agree: no span, no spread
    assert children[:, 2].min() >= 0.6 and children[:, 2].max() <= 3.4
    assert (blx_crossover(np.random.default_rng(0), parents, 0.0)[0] <= 2.0)


def test_lognormal_factors_leave_fixed_genes_alone_clip_and_never_all_one():
    gains = np.array([1.0, 0.0, 2.0, 0.3])
    for seed in range(200):
        factors = lognormal_factors(np.random.default_rng(seed), gains, 0.5, 0.2)
        assert factors[1] == 1.0 and (factors != 1.0).any()
        assert ((0.25 <= factors) & (factors <= 4.0)).all()
    wild = lognormal_factors(np.random.default_rng(1), np.ones(1000), 1.0, 50.0)
    assert wild.min() == 0.25 and wild.max() == 4.0  # huge steps clip at both ends
    assert np.isin(wild, (0.25, 4.0)).mean() > 0.95
    check = np.random.default_rng(3)
    chosen, normal = check.random(4) < 0.5, check.standard_normal(4)
    expected = np.clip(np.where(chosen, np.exp(normal * 0.2 * gains), 1.0), 0.25, 4.0)
    if (expected != 1.0).any():  # the first draw is kept
        assert lognormal_factors(np.random.default_rng(3), gains, 0.5, 0.2) == pytest.approx(expected)


def _searcher(seed: int = 0, **settings) -> BLXSearcher:
    return BLXSearcher(SPACE, BASE, seed, BLXSettings(**settings))


def test_children_stay_in_the_limits_rounded_and_fixed_genes_keep_the_base():
    searcher = _searcher()
    for number in range(40):
        suggestion = searcher.suggest(number)
        searcher.observe(Observation(number, suggestion.hyp, float(np.sin(number))))
        for gene in SPACE.genes:
            value = suggestion.hyp[gene.name]
            if gene.free:
                assert gene.lower <= value <= gene.upper and round(value, 5) == value
            else:
                assert value == BASE[gene.name], gene.name


def test_parents_come_from_the_best_n_scored_trials():
    searcher = _searcher(parents=3)
    hyps = {n: searcher.suggest(n).hyp for n in range(8)}
    assert searcher.suggest(5).parents == ()  # nothing scored yet: the base, mutated
    for n, fitness in enumerate([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.0, 0.6]):
        searcher.observe(Observation(n, hyps[n], fitness))
    searcher.observe(Observation(9, hyps[0], float("nan"), "pruned"))  # never a parent
    for number in range(10, 40):
        parents = searcher.suggest(number).parents
        assert parents and set(parents) <= {1, 3, 5}


def test_children_depend_on_what_finished_not_on_the_order_it_was_told():
    first, rebuilt = _searcher(5), _searcher(5)
    hyps = {n: first.suggest(n).hyp for n in range(10)}
    scores = [(n, 0.1 * ((3 * n) % 7)) for n in range(10)]
    for n, fitness in scores:
        first.observe(Observation(n, hyps[n], fitness))
    for n, fitness in reversed(scores):
        rebuilt.observe(Observation(n, hyps[n], fitness))
    assert [first.suggest(n) for n in range(10, 20)] == [rebuilt.suggest(n) for n in range(10, 20)]
    assert [_searcher(6).suggest(n).hyp for n in range(1, 5)] != [first.suggest(n).hyp for n in range(1, 5)]


def test_one_parent_repeated_is_mutation_alone():
    """Every draw the same parent: no span, so the child is that parent times the factors."""
    searcher = _searcher(parents=1, mutation_probability=1.0)
    parent = {**BASE, "lr0": 0.02, "mosaic": 0.5}
    searcher.observe(Observation(-1, parent, 0.5))  # an imported YOLOv5 row
    child = searcher.suggest(1)
    assert child.parents == (-1,)
    ratio = child.hyp["mosaic"] / parent["mosaic"]
    assert 0.25 <= ratio <= 4.0 or child.hyp["mosaic"] in (0.0, 1.0)
