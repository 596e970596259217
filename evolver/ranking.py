"""Which trial is best: one rule for the coordinator, the run folder, the winner export, the CLI,
the API and the generation rows.

A trial ranks only if it is a search trial that completed with a finite fitness (confirmation
retrainings are scored on another split and summarised by `evolver.confirmation`, never mixed
into the search's ranking); higher fitness first, and on a tie the
earlier trial (lower number) wins, so the answer never depends on the order trials arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, TypeVar


class Scored(Protocol):
    @property
    def number(self) -> int: ...

    @property
    def fitness(self) -> float | None: ...


T = TypeVar("T", bound=Scored)


def ranks(trial: Scored, status: str | None = "completed") -> bool:
    """Whether the trial takes part: a search trial, completed (when it has a status), with a
    finite fitness."""
    if status is not None and getattr(trial, "status", status) != status:
        return False
    if getattr(trial, "stage", "search") != "search":
        return False
    return trial.fitness is not None and math.isfinite(trial.fitness)


def rank_key(trial: Scored) -> tuple[float, int]:
    """Sort key: best first (sorted(..., key=rank_key))."""
    return -float(trial.fitness), trial.number


def ranked(trials: Iterable[T]) -> list[T]:
    """The trials that rank, best first."""
    return sorted((t for t in trials if ranks(t)), key=rank_key)


def best_of(trials: Iterable[T]) -> T | None:
    """The best trial, or None when none ranks."""
    return min((t for t in trials if ranks(t)), key=rank_key, default=None)


def better(trial: T, than: T | None) -> bool:
    """Whether `trial` would take the place of the best so far, `than`."""
    return ranks(trial) and (than is None or rank_key(trial) < rank_key(than))
