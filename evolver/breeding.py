"""The coordinator's breeding rules, apart from SQL and Ray: which trial is bred next, and when a
finished trial may become a parent.

- Trials are numbered in breeding order; trial n belongs to generation n // population, and no
  more than the campaign's total are bred.
- Asynchronous (the default): a free worker breeds at once from whatever has completed.
- `sync` (YOLOv5's loop when population is 1): generation g is bred only once every generation
  before it is closed, and a completed trial becomes a parent only when its generation closes, so
  the children repeat exactly whatever order the trials of a generation finish in.

The coordinator feeds it from SQL and from results; `benchmarks/search_simulation.py` feeds it
simulated results with many more workers than a test machine has — the same rules either way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from evolver.searcher import Observation, Searcher, Suggestion
from evolver.tally import CampaignTally


@dataclass(frozen=True)
class Child:
    number: int
    generation: int
    suggestion: Suggestion


class Breeding:
    def __init__(self, searcher: Searcher, tally: CampaignTally, *, sync: bool) -> None:
        self.searcher = searcher
        self.tally = tally
        self.sync = sync
        self._held: defaultdict[int, list[Observation]] = defaultdict(list)  # sync: until the generation closes
        self._workers = 0

    def workers_changed(self, workers: int) -> None:
        """The number of workers (trials that can run at once); the searcher hears of changes."""
        if workers != self._workers:
            self._workers = workers
            self.searcher.workers_changed(workers)

    def next_child(self) -> Child | None:
        """Breed the next trial, or None: all bred, or (sync) its generation must wait."""
        number = self.tally.next_number
        if number >= self.tally.total:
            return None
        generation = self.tally.generation_of(number)
        if self.sync and not self.tally.earlier_generations_closed(generation):
            return None
        suggestion = self.searcher.suggest(number)
        self.tally.next_number = number + 1
        return Child(number, generation, suggestion)

    def completed(self, generation: int, observation: Observation) -> None:
        """A completed trial: a parent candidate now, or (sync) once its generation closes."""
        if self.sync and generation not in self.tally.closed:
            self._held[generation].append(observation)
            return
        self.searcher.observe(observation)

    def generation_closed(self, generation: int) -> None:
        """Every trial of `generation` finished: its completed trials become parents, in number order."""
        self.tally.closed.add(generation)
        for observation in sorted(self._held.pop(generation, []), key=lambda o: o.number):
            self.searcher.observe(observation)
