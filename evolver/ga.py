"""YOLOv5's genetic operators as pure functions of a seeded `numpy.random.Generator`.

YOLOv5 draws from the global, clock-seeded numpy state inside `train.py`'s main loop, so no run
can be repeated. Here every draw comes from the generator passed in, so a campaign seed fixes
the whole sequence of children, and each operator can be tested on its own statistics.

Vectors are in `SearchSpace` gene order. Formulas (DESIGN.md, "The genetic algorithm"):
- parents: the top n rows by fitness; weights w = fitness - min(fitness) + 1e-6 over those rows;
  `single` draws one row with probability proportional to w, `weighted` takes the w-weighted mean.
- mutation factor per gene: v = clip(g * [U < p] * N(0,1) * U' * s + 1, 0.3, 3.0), U per gene,
  U' once per child, redrawn until some v != 1 (a child identical to its parent wastes a trial).
- child = parent * v, clipped to the gene limits, rounded to 5 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolver.space import SearchSpace

PARENT_METHODS = ("single", "weighted")
FACTOR_MIN, FACTOR_MAX = 0.3, 3.0
DECIMALS = 5


@dataclass(frozen=True)
class ParentChoice:
    """The parent vector and which population rows made it (for the trial's lineage in SQL)."""

    vector: np.ndarray
    rows: tuple[int, ...]


def top_rows(fitnesses: np.ndarray, top_n: int = 5) -> np.ndarray:
    """Indices of the `top_n` best rows, best first; ties keep the earlier row so order is reproducible."""
    values = np.asarray(fitnesses, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D array of fitnesses, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("fitnesses must be finite (failed trials are never parents)")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    return np.argsort(-values, kind="stable")[:top_n]


def selection_weights(fitnesses: np.ndarray) -> np.ndarray:
    """fitness - min + 1e-6: the worst parent keeps a tiny chance, equal fitnesses equal chances."""
    values = np.asarray(fitnesses, dtype=float)
    return values - values.min() + 1e-6


def choose_parent(rng: np.random.Generator, population: np.ndarray, fitnesses: np.ndarray,
                  method: str = "single", top_n: int = 5) -> ParentChoice:
    """Parent vector plus the rows it came from: one row for `single`, all top rows for `weighted`."""
    rows_values = np.asarray(population, dtype=float)
    fitness_values = np.asarray(fitnesses, dtype=float)
    if rows_values.ndim != 2 or rows_values.shape[0] != fitness_values.shape[0]:
        raise ValueError(f"population {rows_values.shape} and fitnesses {fitness_values.shape} do not match")
    if method not in PARENT_METHODS:
        raise ValueError(f"parent selection must be one of {', '.join(PARENT_METHODS)}, got {method!r}")
    top = top_rows(fitness_values, top_n)
    weights = selection_weights(fitness_values[top])
    if method == "single":
        # Inverse-CDF draw: P(row i) = w_i / sum(w), one uniform (what rng.choice(p=...) does,
        # without its validation, which cost more than the whole mutation).
        cumulative = np.cumsum(weights)
        pick = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(top) - 1)
        row = int(top[pick])
        return ParentChoice(rows_values[row].copy(), (row,))
    mean = (rows_values[top] * weights[:, None]).sum(axis=0) / weights.sum()
    return ParentChoice(mean, tuple(int(row) for row in top))


def select_parent(rng: np.random.Generator, population: np.ndarray, fitnesses: np.ndarray,
                  method: str = "single", top_n: int = 5) -> np.ndarray:
    """The parent vector only (see `choose_parent` for its rows)."""
    return choose_parent(rng, population, fitnesses, method, top_n).vector


def mutation_factors(rng: np.random.Generator, gains: np.ndarray, probability: float = 0.9,
                     sigma: float = 0.2) -> np.ndarray:
    """Per-gene multipliers in [0.3, 3.0]; redrawn until at least one differs from 1."""
    gain_values = np.asarray(gains, dtype=float)
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"mutation probability must be in (0, 1], got {probability}")
    if not sigma > 0.0:
        raise ValueError(f"mutation sigma must be > 0, got {sigma}")
    if (gain_values < 0).any() or not (gain_values > 0).any():
        # With no positive gain the redraw loop below could never end.
        raise ValueError("mutation needs non-negative gains with at least one > 0")
    while True:
        chosen = rng.random(gain_values.size) < probability
        normal = rng.standard_normal(gain_values.size)
        strength = rng.random()  # U': one per child, so some children move far and others barely
        factors = np.minimum(np.maximum(gain_values * chosen * normal * (strength * sigma) + 1.0, FACTOR_MIN),
                             FACTOR_MAX)
        if (factors != 1.0).any():
            return factors


def apply_limits(values: np.ndarray, space: SearchSpace) -> np.ndarray:
    """Clip to the gene limits and round to 5 decimals (clipping again in case a limit has more decimals)."""
    lowers, uppers = space.lowers, space.uppers
    clipped = np.minimum(np.maximum(values, lowers), uppers)
    return np.minimum(np.maximum(np.round(clipped, DECIMALS), lowers), uppers)


def mutate(rng: np.random.Generator, parent: np.ndarray, space: SearchSpace, probability: float = 0.9,
           sigma: float = 0.2) -> np.ndarray:
    """A child of `parent`. Zero-gain genes keep the parent's value exactly (not even clipped or
    rounded): a fixed hyperparameter is the user's choice, verbatim."""
    parent_values = np.asarray(parent, dtype=float)
    gains = space.gains
    if parent_values.shape != gains.shape:
        raise ValueError(f"parent has shape {parent_values.shape}, search space has {gains.size} genes")
    child = apply_limits(parent_values * mutation_factors(rng, gains, probability, sigma), space)
    return np.where(gains > 0, child, parent_values)
