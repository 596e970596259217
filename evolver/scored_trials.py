"""The finished trials a searcher may breed from: each scored trial's genes and fitness.

The GA keeps its own incremental top-n; the population GA and BLX keep this: every completed
search trial with a finite fitness (and every imported YOLOv5 row, numbered -1, -2, ...), its
hyperparameters as a vector in the search space's gene order. A pruned, failed or diverged trial
is forgotten (it can never be a parent). Observing a number again replaces it: a resumed
coordinator observes the stored trials once more.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

import numpy as np

from evolver.searcher import Observation
from evolver.space import SearchSpace


class ScoredTrials:
    def __init__(self, space: SearchSpace, base: Mapping[str, float]) -> None:
        self._space = space
        self._base = dict(base)
        self._trials: dict[int, tuple[np.ndarray, float]] = {}

    def __len__(self) -> int:
        return len(self._trials)

    def observe(self, observation: Observation) -> None:
        if not observation.scored:
            self._trials.pop(observation.number, None)
            return
        vector = self._space.vector_over(self._base, observation.hyp, f"trial {observation.number}")
        self._trials[observation.number] = (vector, float(observation.fitness))

    def best(self, n: int) -> list[int]:
        """Numbers of the n fittest, best first (ties: the lower number first)."""
        return heapq.nlargest(n, self._trials, key=lambda number: (self._trials[number][1], -number))

    def latest(self, n: int) -> list[int]:
        """Numbers of the n most recently bred (highest numbers), in number order."""
        return sorted(heapq.nlargest(n, self._trials))

    def genes(self, numbers: list[int]) -> np.ndarray:
        """Their vectors, one row each, in the order given."""
        return np.array([self._trials[number][0] for number in numbers]).reshape(len(numbers), len(self._space.names))

    def fitness(self, numbers: list[int]) -> np.ndarray:
        return np.array([self._trials[number][1] for number in numbers], dtype=float)
