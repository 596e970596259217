"""One rule for "the best trial": completed, finite fitness, highest first, earliest on ties."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evolver.ranking import best_of, better, ranked


@dataclass(frozen=True)
class T:
    number: int
    fitness: float | None
    status: str = "completed"


def test_highest_fitness_wins_and_ties_go_to_the_earlier_trial():
    trials = [T(3, 0.5), T(1, 0.7), T(2, 0.7), T(0, 0.1)]
    assert best_of(trials) == T(1, 0.7)
    assert [t.number for t in ranked(trials)] == [1, 2, 3, 0]
    assert best_of(reversed(trials)) == T(1, 0.7)  # arrival order does not matter


def test_unscored_or_unfinished_trials_never_rank():
    trials = [T(0, None), T(1, math.nan), T(2, 0.9, "failed"), T(3, 0.9, "pruned"), T(4, -0.2)]
    assert best_of(trials) == T(4, -0.2)  # a negative fitness still beats no fitness
    assert ranked(trials) == [T(4, -0.2)]
    assert best_of([T(0, None)]) is None


def test_better_replaces_only_a_strictly_better_or_equal_but_earlier_best():
    assert better(T(5, 0.3), None)
    assert not better(T(5, None), None)
    assert better(T(5, 0.4), T(2, 0.3))
    assert not better(T(5, 0.3), T(2, 0.3))  # a later tie keeps the earlier best
    assert better(T(1, 0.3), T(2, 0.3))
