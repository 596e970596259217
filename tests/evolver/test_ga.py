"""Statistics of the GA operators. Seeds are fixed, so each test is deterministic; tolerances are
several standard errors wide yet far tighter than any formula mistake (wrong p, per-gene U',
missing retry, unweighted choice) would move the statistic."""

from __future__ import annotations

import numpy as np
import pytest

from evolver.ga import (
    choose_parent,
    mutate,
    mutation_factors,
    select_parent,
    selection_weights,
    top_rows,
)
from evolver.space import Gene, SearchSpace
from yolo.hyp import Hyperparameters


def _factors(seed: int, gains, draws: int, probability=0.9, sigma=0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([mutation_factors(rng, np.asarray(gains, float), probability, sigma) for _ in range(draws)])


def test_fraction_of_mutated_genes_is_p():
    gains = SearchSpace.default().gains
    factors = _factors(0, gains, 2000)
    moved = factors[:, gains > 0] != 1.0
    # 25 genes at p = 0.9: the retry (all 25 unchanged, 1e-25) never matters; se ~ 0.0013.
    assert moved.mean() == pytest.approx(0.9, abs=0.006)
    assert np.all(factors[:, gains == 0] == 1.0)


@pytest.mark.parametrize("probability", [0.3, 0.9])
def test_fraction_conditioned_on_retry(probability):
    # Two genes: a draw leaving both unchanged is redrawn, so P(a gene moved) = p / (1 - (1-p)^2).
    factors = _factors(1, [1.0, 1.0, 0.0], 6000, probability)
    expected = probability / (1 - (1 - probability) ** 2)
    assert (factors[:, :2] != 1.0).mean() == pytest.approx(expected, abs=0.015)
    assert np.all((factors[:, :2] != 1.0).any(axis=1))  # never a child equal to its parent
    assert np.all(factors[:, 2] == 1.0)


def test_single_gene_always_moves():
    factors = _factors(2, [0.0, 1.0], 500, probability=0.2)
    assert np.all(factors[:, 1] != 1.0) and np.all(factors[:, 0] == 1.0)


def test_factor_spread_and_shared_strength():
    factors = _factors(3, [1.0, 1.0, 1.0, 0.5], 4000, probability=1.0)
    step = factors - 1.0
    # v - 1 = g * N * U' * s, so mean 0 and sd g * s * sqrt(E[N^2] E[U'^2]) = g * 0.2 / sqrt(3).
    assert step[:, :3].mean() == pytest.approx(0.0, abs=0.005)
    assert step[:, :3].std() == pytest.approx(0.2 / np.sqrt(3), rel=0.04)
    assert step[:, 3].std() == pytest.approx(0.5 * 0.2 / np.sqrt(3), rel=0.05)
    # U' is drawn once per child: the sizes of steps within one child are correlated (~0.30);
    # a per-gene U' would make them independent.
    correlation = np.corrcoef(np.abs(step[:, 0]), np.abs(step[:, 1]))[0, 1]
    assert correlation > 0.2


def test_factors_clipped():
    factors = _factors(4, [50.0, 50.0], 500, probability=1.0)
    assert factors.min() == pytest.approx(0.3) and factors.max() == pytest.approx(3.0)
    assert np.all((factors >= 0.3) & (factors <= 3.0))


@pytest.mark.parametrize("gains, probability, sigma", [
    ([0.0, 0.0], 0.9, 0.2), ([1.0, -1.0], 0.9, 0.2), ([1.0], 0.0, 0.2), ([1.0], 0.9, 0.0),
])
def test_degenerate_mutation_rejected(gains, probability, sigma):
    with pytest.raises(ValueError):
        mutation_factors(np.random.default_rng(0), np.asarray(gains), probability, sigma)


def test_mutate_keeps_limits_fixed_genes_and_rounding():
    space = SearchSpace.default().with_overrides({"anchors": {"gain": 10.0}, "lr0": {"gain": 30.0}})
    rng = np.random.default_rng(5)
    lowers, uppers, gains = space.lowers, space.uppers, space.gains
    base = space.vector(Hyperparameters().to_dict())
    # Start outside the limits for some gained genes too: clipping must pull them in.
    parent = base.copy()
    parent[space.names.index("momentum")] = 1.5
    parent[space.names.index("anchors")] = 5.0
    children = np.stack([mutate(rng, parent, space) for _ in range(1000)])
    gained = gains > 0
    assert np.all(children[:, gained] >= lowers[gained]) and np.all(children[:, gained] <= uppers[gained])
    assert np.all(children[:, ~gained] == parent[~gained])
    assert np.array_equal(np.round(children, 5), children)
    # anchors stays a float (yolo rounds it), clipped to [2, 10]; both limits are reached.
    anchors = children[:, space.names.index("anchors")]
    assert anchors.min() == 2.0 and anchors.max() == 10.0
    assert np.any(anchors != np.round(anchors))
    # Genes at 0 stay 0 under a multiplicative mutation (YOLOv5 behaves the same).
    assert np.all(children[:, space.names.index("degrees")] == 0.0)


def test_mutate_fixed_gene_verbatim_even_outside_limits():
    space = SearchSpace((Gene("a", 1.0, 0.0, 10.0), Gene("b", 0.0, 0.0, 1.0)))
    child = mutate(np.random.default_rng(0), np.array([5.0, 1.2345678]), space)
    assert child[1] == 1.2345678 and child[0] != 5.0


def test_weighted_returns_weighted_mean():
    rng = np.random.default_rng(6)
    population = rng.random((8, 4))
    fitnesses = np.array([0.1, 0.7, 0.3, 0.9, 0.2, 0.5, 0.05, 0.6])
    top = [3, 1, 7, 5, 2]  # fitness 0.9, 0.7, 0.6, 0.5, 0.3
    weights = fitnesses[top] - 0.3 + 1e-6
    expected = (population[top] * weights[:, None]).sum(0) / weights.sum()
    choice = choose_parent(rng, population, fitnesses, "weighted")
    assert choice.rows == tuple(top)
    np.testing.assert_allclose(choice.vector, expected, rtol=1e-12)
    # No randomness is involved, and fewer rows than top_n use them all.
    np.testing.assert_allclose(select_parent(rng, population, fitnesses, "weighted"), expected, rtol=1e-12)
    two = choose_parent(rng, population[:2], fitnesses[:2], "weighted")
    w = np.array([0.7, 0.1]) - 0.1 + 1e-6
    np.testing.assert_allclose(two.vector, (population[1] * w[0] + population[0] * w[1]) / w.sum())


def test_single_picks_in_proportion_to_weights():
    rng = np.random.default_rng(7)
    fitnesses = np.array([0.1, 0.3, 0.5, 0.2, 0.4, 0.0, 0.05])
    population = np.arange(7, dtype=float)[:, None] * np.ones((1, 3))
    draws = 20000
    counts = np.zeros(7)
    for _ in range(draws):
        choice = choose_parent(rng, population, fitnesses, "single")
        (row,) = choice.rows
        assert np.array_equal(choice.vector, population[row])
        counts[row] += 1
    top = [2, 4, 1, 3, 0]
    weights = selection_weights(fitnesses[top])
    np.testing.assert_allclose(counts[top] / draws, weights / weights.sum(), atol=0.012)
    assert counts[5] == 0 and counts[6] == 0  # outside the top 5
    assert counts[0] <= 2  # the worst of the top 5 has weight 1e-6


def test_top_rows_ties_and_validation():
    assert list(top_rows(np.array([0.5, 0.9, 0.5, 0.9]), 3)) == [1, 3, 0]
    with pytest.raises(ValueError):
        top_rows(np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="single"):
        choose_parent(np.random.default_rng(0), np.ones((2, 2)), np.ones(2), "best")


def test_same_seed_repeats_and_different_seed_differs():
    space = SearchSpace.default()
    parent = space.vector(Hyperparameters().to_dict())

    def children(seed):
        rng = np.random.default_rng(seed)
        return np.stack([mutate(rng, parent, space) for _ in range(20)])

    assert np.array_equal(children(11), children(11))
    assert not np.array_equal(children(11), children(12))
