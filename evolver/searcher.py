"""What to train next: the searcher interface and its first implementation, YOLOv5's GA.

The split follows Ray Tune's searcher: `suggest(number)` proposes trial `number`'s
hyperparameters, `observe(...)` tells it about a finished search trial: completed ones may serve
as parents; pruned and failed ones only end what the searcher had in flight. The GA keeps no other
state, so after a coordinator crash the same searcher is rebuilt by observing the finished trials
stored in SQL again.

Reproducibility: trial `number` draws from `default_rng([seed, number])` and parents are ranked
over observations sorted by trial number, so a child depends only on the campaign seed, its
number and which trials had finished when it was bred, not on the order results arrived in.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from evolver.ga import PARENT_METHODS, choose_parent, mutate
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

# Training seeds fit a signed 32-bit SQL integer and every framework's seeding call.
_TRAINING_SEED_LIMIT = 2**31 - 1


def training_seed(rng: np.random.Generator) -> int:
    """A trial's training seed: every searcher draws it first from the trial's own generator, so
    it does not depend on what had finished."""
    return int(rng.integers(0, _TRAINING_SEED_LIMIT))


def trial_generator(campaign_seed: int, number: int) -> tuple[np.random.Generator, int]:
    """Trial `number`'s own generator, `default_rng([campaign_seed, number])`, and its training
    seed (drawn first): what every searcher breeds trial `number` from."""
    if number < 0:
        raise ValueError(f"trial numbers start at 0, got {number}")
    rng = np.random.default_rng([campaign_seed, number])
    return rng, training_seed(rng)


@dataclass(frozen=True)
class Suggestion:
    hyp: dict[str, float]
    parents: tuple[int, ...]  # numbers of the trials bred from (negative: imported parents)
    seed: int  # training seed of this trial


OUTCOMES = ("completed", "pruned", "failed")


@dataclass(frozen=True)
class Observation:
    """A finished search trial. Only a completed one with a finite fitness may be a parent; pruned
    and failed ones (fitness nan) are told so that a searcher keeping trials in flight (Optuna's
    study) knows they ended, and how."""

    number: int
    hyp: dict[str, float]
    fitness: float
    outcome: Literal["completed", "pruned", "failed"] = "completed"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"trial {self.number}: outcome must be one of {', '.join(OUTCOMES)}, "
                             f"got {self.outcome!r}")

    @property
    def scored(self) -> bool:
        """Completed with a finite fitness (a diverged run completes with nan)."""
        return self.outcome == "completed" and math.isfinite(self.fitness)


@runtime_checkable
class Searcher(Protocol):
    def suggest(self, number: int) -> Suggestion: ...

    def observe(self, observation: Observation) -> None: ...

    def workers_changed(self, workers: int) -> None:
        """How many trials may run at once now (the coordinator's live workers)."""


class GeneticSearcher:
    """YOLOv5's evolution: trial 0 trains the base; later trials mutate a parent bred from the
    best `top_n` observed trials (or the base while none has finished)."""

    def __init__(self, space: SearchSpace, base_hyp: Mapping[str, float], seed: int,
                 parent_selection: str = "single", top_n: int = 5,
                 mutation_probability: float = 0.9, sigma: float = 0.2, parents_per_worker: float = 0.0) -> None:
        if space.names != tuple(Hyperparameters.keys()):
            raise ValueError("search space genes must be the 29 hyperparameters in table order")
        if parent_selection not in PARENT_METHODS:
            raise ValueError(f"parent_selection must be one of {', '.join(PARENT_METHODS)}, got {parent_selection!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {top_n}")
        if not 0.0 <= parents_per_worker <= 100.0:
            raise ValueError(f"parents_per_worker must be in [0, 100], got {parents_per_worker}")
        if not 0.0 < mutation_probability <= 1.0:
            raise ValueError(f"mutation_probability must be in (0, 1], got {mutation_probability}")
        if not sigma > 0.0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if not np.any(space.gains > 0):
            raise ValueError("search space has no gene with gain > 0: nothing could ever change")
        self._space = space
        # Missing keys take YOLOv5's defaults, unknown keys are an error (both via Hyperparameters).
        self._base = Hyperparameters.from_dict(base_hyp).to_dict()
        self._base_vector = space.vector(self._base)
        self._seed = int(seed)
        self._parent_selection = parent_selection
        self._min_top_n = top_n
        self._parents_per_worker = parents_per_worker
        self._top_n = top_n  # the parent pool's size now: grows with the workers (parents_per_worker)
        self._probability = mutation_probability
        self._sigma = sigma
        self._observed: dict[int, tuple[np.ndarray, float]] = {}
        self._top: list[int] = []  # numbers of the best top_n observations (ties: lower number)

    def _best_numbers(self, candidates: Mapping[int, tuple[np.ndarray, float]]) -> list[int]:
        return heapq.nlargest(self._top_n, candidates, key=lambda n: (candidates[n][1], -n))

    def workers_changed(self, workers: int) -> None:
        """With `parents_per_worker` > 0 the parents come from the best
        max(top_n, ceil(parents_per_worker * workers)) trials: with many trials in flight at once,
        a pool of 5 breeds them all around the same few points (see the README's search figures)."""
        top_n = max(self._min_top_n, math.ceil(self._parents_per_worker * max(1, workers)))
        if top_n != self._top_n:
            self._top_n = top_n
            self._top = self._best_numbers(self._observed)

    def observe(self, observation: Observation) -> None:
        """Remember a parent candidate. Observing a number again replaces it (resume re-observes).
        A pruned or failed trial, or a non-finite fitness (diverged run), can never be a good
        parent and is ignored."""
        if not observation.scored:
            if self._observed.pop(observation.number, None) is not None:
                self._top = self._best_numbers(self._observed)
            return
        vector = self._space.vector_over(self._base, observation.hyp, f"trial {observation.number}")
        replaced = observation.number in self._observed
        self._observed[observation.number] = (vector, float(observation.fitness))
        if replaced:
            self._top = self._best_numbers(self._observed)
        else:  # one new candidate: it joins the top n or not, O(n) for n = top_n
            self._top = self._best_numbers({n: self._observed[n] for n in (*self._top, observation.number)})

    def suggest(self, number: int) -> Suggestion:
        rng, seed = trial_generator(self._seed, number)
        if number == 0:
            return Suggestion(dict(self._base), (), seed)
        if self._observed:
            # Only the best top_n can be parents: stack those (in trial-number order, as the full
            # population would list them), not every trial seen, so a suggestion stays O(top_n).
            numbers = sorted(self._top)
            population = np.array([self._observed[n][0] for n in numbers])
            fitnesses = np.array([self._observed[n][1] for n in numbers])
            choice = choose_parent(rng, population, fitnesses, self._parent_selection, self._top_n)
            parent, parents = choice.vector, tuple(numbers[row] for row in choice.rows)
        else:
            parent, parents = self._base_vector, ()
        child = mutate(rng, parent, self._space, self._probability, self._sigma)
        # Fixed genes stay at the campaign's value even when a parent (say, an imported YOLOv5
        # row) was trained with another one: gain 0 means the user chose it.
        child = np.where(self._space.gains > 0, child, self._base_vector)
        return Suggestion(self._space.to_hyp(child), parents, seed)
