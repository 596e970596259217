"""YOLOv5 master's population GA (`train.py --evolve` since PR #11348) as a searcher.

Facts from YOLOv5 master: a population of 50, seeded from hyp files (`--evolve_population`, or
`--resume_evolve evolve_population.yaml`), the rest drawn uniformly within the limits; each
generation g of G: tournament selection (size min(10, population) - g / (G / 10), at least 2)
fills population - elite places of a pool, the elite (2 + int(3 g / G) best) the rest; every child
takes two parents from the pool, a single-point crossover with rate max(0.5, 1 - g / G), then
each gene moves by U(-0.1, 0.1) with rate max(0.01, 0.5 - g / G), clamped to its limits. By
default only the augmentation genes evolve (`SearchSpace.augmentation_only`).

How it maps onto Evolver:
- A generation is `population` trials (trial n is in generation n // population; G is the
  campaign's `generations`). Trial 0 trains the base hyperparameters, as with every searcher; the
  rest of generation 0 trains the `start_population` in its order, then uniform draws.
- Asynchronous (default): a child of generation g >= 1 breeds from the `population` most recently
  bred scored trials (highest numbers) that have finished when it is bred, a sliding window that
  stands for "the previous generation" while some of it still trains. With `sync: true` breeding
  waits for each generation to close, so the window is exactly the previous generation (older
  trials fill the places of failed ones): YOLOv5's loop. Imported evolve.csv rows (numbered
  -1, -2, ...) are the oldest members of that window.
- YOLOv5 builds one pool per generation; here each child builds its own pool from its own
  generator `default_rng([seed, number])`, so a child depends only on the seed, its number and
  which trials had finished when it was bred (as the GA's). The pool holds exactly `elite` elite
  rows (YOLOv5 may hold more when fitnesses tie) and the parents are drawn from the whole pool.
- The fitness is the campaign's (`fitness_weights`); YOLOv5 master ranks by mAP@0.5 alone, which
  `fitness_weights: [0, 0, 1, 0]` reproduces.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evolver.scored_trials import ScoredTrials
from evolver.searcher import Observation, Suggestion, trial_generator
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

DEFAULT_POPULATION = 50  # YOLOv5 master's pop_size

log = logging.getLogger(__name__)


class PopulationGASettings(BaseModel):
    """The population GA's knobs, YOLOv5 master's values by default; each schedule moves linearly
    with the generation g of G (the campaign's `generations`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    elite: tuple[int, int] = Field((2, 5), description="elite rows in the selection pool: from, to "
                                   "(start + int((end - start) * g / G))")
    tournament: tuple[int, int] = Field((10, 2), description="tournament size: from (at most the population), "
                                        "falling by 10 / G per generation, to at least")
    crossover: tuple[float, float] = Field((1.0, 0.5), description="single-point crossover rate: from, "
                                           "falling by 1 / G per generation, to at least")
    mutation: tuple[float, float] = Field((0.5, 0.01), description="per-gene mutation rate: from, falling by "
                                          "1 / G per generation, to at least")
    step: float = Field(0.1, gt=0.0, le=1000.0, description="a mutated gene moves by U(-step, step), in the "
                        "gene's own units, then is clamped to its limits")

    @model_validator(mode="after")
    def _ranges(self) -> "PopulationGASettings":
        if not 0 <= self.elite[0] <= self.elite[1]:
            raise ValueError(f"elite: need 0 <= from <= to, got {list(self.elite)}")
        if not 1 <= self.tournament[1] <= self.tournament[0]:
            raise ValueError(f"tournament: need from >= to >= 1, got {list(self.tournament)}")
        for name in ("crossover", "mutation"):
            start, end = getattr(self, name)
            if not 0.0 <= end <= start <= 1.0:
                raise ValueError(f"{name}: need 0 <= to <= from <= 1, got {[start, end]}")
        return self

    def rates(self, generation: int, generations: int, population: int) -> GenerationRates:
        """The operators' settings for `generation` (0-based) of `generations`."""
        progress = generation / generations
        elite = self.elite[0] + int((self.elite[1] - self.elite[0]) * progress)
        tournament = max(self.tournament[1], int(min(self.tournament[0], population) - 10 * progress))
        return GenerationRates(
            elite=min(elite, population), tournament=tournament,
            crossover=max(self.crossover[1], self.crossover[0] - progress),
            mutation=max(self.mutation[1], self.mutation[0] - progress))


@dataclass(frozen=True)
class GenerationRates:
    elite: int
    tournament: int
    crossover: float
    mutation: float


def tournament_winner(rng: np.random.Generator, fitness: np.ndarray, size: int) -> int:
    """Row of the fittest among `size` distinct rows drawn at random (ties: the one drawn first)."""
    entrants = rng.choice(len(fitness), size=min(size, len(fitness)), replace=False)
    return int(entrants[int(np.argmax(fitness[entrants]))])


def elite_rows(fitness: np.ndarray, count: int) -> list[int]:
    """The `count` fittest rows, best first (ties: the earlier row)."""
    return [int(row) for row in np.argsort(-fitness, kind="stable")[:count]]


def selection_pool(rng: np.random.Generator, fitness: np.ndarray, size: int, elite: int, tournament: int) -> list[int]:
    """YOLOv5's mating pool: `size - elite` tournament winners, then the `elite` fittest rows."""
    elite = min(elite, len(fitness), size)
    winners = [tournament_winner(rng, fitness, tournament) for _ in range(size - elite)]
    return winners + elite_rows(fitness, elite)


def single_point_crossover(rng: np.random.Generator, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, int]:
    """`first`'s genes before a point drawn from 1 .. len - 1, `second`'s from there on."""
    point = int(rng.integers(1, len(first)))
    return np.concatenate([first[:point], second[point:]]), point


def uniform_mutation(rng: np.random.Generator, genes: np.ndarray, rate: float, step: float,
                     lowers: np.ndarray, uppers: np.ndarray) -> np.ndarray:
    """Each gene, with probability `rate`, moves by U(-step, step), then is clamped to its limits."""
    moved = rng.random(len(genes)) < rate
    shifts = rng.uniform(-step, step, len(genes))
    return np.where(moved, np.clip(genes + shifts, lowers, uppers), genes)


class PopulationSearcher:
    def __init__(self, space: SearchSpace, base_hyp: Mapping[str, float], seed: int, *, population: int,
                 generations: int, settings: PopulationGASettings | None = None,
                 start_population: Sequence[Mapping[str, float]] = ()) -> None:
        if population < 2:
            raise ValueError(f"population: the population GA needs at least 2 trials per generation, got {population}")
        space.require_free_gene()
        self._space = space
        self._base = Hyperparameters.from_dict(base_hyp).to_dict()
        self._base_vector = space.vector(self._base)
        self._seed = int(seed)
        self._population = population
        self._generations = generations
        self._settings = settings or PopulationGASettings()
        self._start = [self._individual(index, hyp) for index, hyp in enumerate(start_population)]
        if len(self._start) > population - 1:
            # Generation 0 is the base and population - 1 more (YOLOv5 grows its first generation instead).
            log.warning("start_population holds %d individuals; generation 0 (the base + %d) trains the first %d: "
                        "population: %d would train them all", len(self._start), population - 1, population - 1,
                        len(self._start) + 1)
            self._start = self._start[:population - 1]
        self._scored = ScoredTrials(space, self._base)

    def _individual(self, index: int, hyp: Mapping[str, float]) -> np.ndarray:
        """A starting individual: its evolved genes (clamped to the limits); fixed genes keep the
        campaign's value, genes it lacks the base's."""
        vector = np.clip(self._space.vector_over(self._base, hyp, f"start_population individual {index + 1}"),
                         self._space.lowers, self._space.uppers)
        return np.where(self._space.free, vector, self._base_vector)

    def observe(self, observation: Observation) -> None:
        self._scored.observe(observation)

    def workers_changed(self, workers: int) -> None:
        """The window is the population, whatever the number of workers."""

    def suggest(self, number: int) -> Suggestion:
        rng, seed = trial_generator(self._seed, number)
        if number == 0:
            return Suggestion(dict(self._base), (), seed)
        generation = number // self._population
        window = self._scored.latest(self._population)
        if generation == 0 or not window:
            return Suggestion(self._space.to_hyp(self._first_generation(rng, number)), (), seed)
        child, parents = self._breed(rng, generation, window)
        return Suggestion(self._space.to_hyp(child), parents, seed)

    def _first_generation(self, rng: np.random.Generator, number: int) -> np.ndarray:
        """Trial `number` of generation 0 (or bred before anything scored): the next starting
        individual, else a uniform draw within the limits of the evolved genes."""
        if number - 1 < len(self._start):
            return self._start[number - 1]
        drawn = rng.uniform(self._space.lowers, self._space.uppers)
        return np.where(self._space.free, drawn, self._base_vector)

    def _breed(self, rng: np.random.Generator, generation: int, window: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
        rates = self._settings.rates(generation, self._generations, self._population)
        genes = self._scored.genes(window)[:, self._space.free]
        pool = selection_pool(rng, self._scored.fitness(window), self._population, rates.elite, rates.tournament)
        first, second = (pool[int(rng.integers(len(pool)))] for _ in range(2))
        child, rows = genes[first], (first,)
        if rng.random() < rates.crossover and genes.shape[1] > 1:
            child, _ = single_point_crossover(rng, genes[first], genes[second])
            rows = tuple(sorted({first, second}))
        evolved_lowers, evolved_uppers = self._space.lowers[self._space.free], self._space.uppers[self._space.free]
        child = uniform_mutation(rng, child, rates.mutation, self._settings.step, evolved_lowers, evolved_uppers)
        vector = self._base_vector.copy()
        vector[self._space.free] = child
        return vector, tuple(window[row] for row in rows)
