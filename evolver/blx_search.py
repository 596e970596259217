"""Ultralytics' tuner (`model.tune()`, 8.3.198 and later) as a searcher: BLX-α crossover of the
best results, then a log-normal mutation.

Facts from Ultralytics' tuner: up to 9 parents are drawn, with replacement, from the best 9
results, with weights fitness - min(fitness) + 1e-6; the child gene lies uniformly in
[lo - α·span, hi + α·span] of the parents' values (α = 0.2, span = hi - lo); then each gene, with
probability 0.5, is multiplied by exp(N(0, σ·gain)) clipped to [0.25, 4], redrawn until some
factor differs from 1; σ falls from 0.2 to 0.1 over the first 300 iterations; the result is
clamped to the limits and rounded to 5 decimals.

In Evolver: trial 0 trains the base; trial n's σ is the schedule's at iteration n (linear, then
flat), its parents come from the scored trials finished when it is bred (imported evolve.csv rows
included), and its draws from `default_rng([seed, number])`, so nothing else about the order of
results changes a child. Before anything has scored, the base is the only parent (mutation alone,
as the GA does). Genes with gain 0 keep the campaign's value.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evolver.ga import apply_limits
from evolver.scored_trials import ScoredTrials
from evolver.searcher import Observation, Suggestion, trial_generator
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

FACTOR_MIN, FACTOR_MAX = 0.25, 4.0


class BLXSettings(BaseModel):
    """The BLX searcher's knobs, Ultralytics' values by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parents: int = Field(9, ge=1, le=1000, description="parents drawn (with replacement, by fitness) from the "
                         "best this many scored trials")
    alpha: float = Field(0.2, ge=0.0, le=10.0, description="BLX-α: the child lies in [lo - α·span, hi + α·span] "
                         "of its parents' values")
    mutation_probability: float = Field(0.5, gt=0.0, le=1.0, description="chance that each gene is mutated")
    sigma: tuple[float, float] = Field((0.2, 0.1), description="mutation σ: from, to (factor exp(N(0, σ·gain)))")
    sigma_trials: int = Field(300, ge=1, le=10_000_000, description="trials over which σ falls linearly from "
                              "its first value to its second")

    @model_validator(mode="after")
    def _sigma_range(self) -> "BLXSettings":
        if not 0.0 < self.sigma[1] <= self.sigma[0] <= 10.0:
            raise ValueError(f"sigma: need 0 < to <= from <= 10, got {list(self.sigma)}")
        return self

    def sigma_at(self, number: int) -> float:
        """σ of trial `number`: linear from sigma[0] at trial 0 to sigma[1] at `sigma_trials`, then flat."""
        start, end = self.sigma
        return start - (start - end) * min(number / self.sigma_trials, 1.0)


def fitness_weights(fitness: np.ndarray) -> np.ndarray:
    """fitness - min + 1e-6; all ones when that is degenerate (non-finite or summing to 0)."""
    weights = np.asarray(fitness, dtype=float) - np.min(fitness) + 1e-6
    return weights if np.isfinite(weights).all() and weights.sum() > 0 else np.ones_like(weights)


def draw_parents(rng: np.random.Generator, fitness: np.ndarray, count: int) -> np.ndarray:
    """`count` rows drawn with replacement, each with probability proportional to its weight."""
    weights = fitness_weights(fitness)
    return rng.choice(len(weights), size=count, replace=True, p=weights / weights.sum())


def blx_crossover(rng: np.random.Generator, parents: np.ndarray, alpha: float) -> np.ndarray:
    """Per gene, uniform in [lo - alpha·span, hi + alpha·span] of the parents' values (rows)."""
    lo, hi = parents.min(axis=0), parents.max(axis=0)
    span = hi - lo
    return rng.uniform(lo - alpha * span, hi + alpha * span)


def lognormal_factors(rng: np.random.Generator, gains: np.ndarray, probability: float, sigma: float) -> np.ndarray:
    """Per gene: exp(N(0, sigma·gain)) with probability `probability`, else 1; clipped to [0.25, 4];
    redrawn until some factor differs from 1 (needs a gene with gain > 0)."""
    if not (gains > 0).any():
        raise ValueError("mutation needs at least one gene with gain > 0")
    while True:
        chosen = rng.random(len(gains)) < probability
        step = rng.standard_normal(len(gains)) * (sigma * gains)
        factors = np.clip(np.where(chosen, np.exp(step), 1.0), FACTOR_MIN, FACTOR_MAX)
        if (factors != 1.0).any():
            return factors


class BLXSearcher:
    def __init__(self, space: SearchSpace, base_hyp: Mapping[str, float], seed: int,
                 settings: BLXSettings | None = None) -> None:
        space.require_free_gene()
        self._space = space
        self._base = Hyperparameters.from_dict(base_hyp).to_dict()
        self._base_vector = space.vector(self._base)
        self._seed = int(seed)
        self._settings = settings or BLXSettings()
        self._scored = ScoredTrials(space, self._base)

    def observe(self, observation: Observation) -> None:
        self._scored.observe(observation)

    def workers_changed(self, workers: int) -> None:
        """Breeds from whatever has scored, however many run at once."""

    def suggest(self, number: int) -> Suggestion:
        rng, seed = trial_generator(self._seed, number)
        if number == 0:
            return Suggestion(dict(self._base), (), seed)
        settings = self._settings
        best = self._scored.best(settings.parents)
        if best:
            rows = draw_parents(rng, self._scored.fitness(best), settings.parents)
            genes = blx_crossover(rng, self._scored.genes([best[row] for row in rows]), settings.alpha)
            parents = tuple(sorted({best[row] for row in rows}))
        else:
            genes, parents = self._base_vector, ()
        gains = np.where(self._space.free, self._space.gains, 0.0)
        factors = lognormal_factors(rng, gains, settings.mutation_probability, settings.sigma_at(number))
        child = np.where(self._space.free, apply_limits(genes * factors, self._space), self._base_vector)
        return Suggestion(self._space.to_hyp(child), parents, seed)
