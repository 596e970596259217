"""The coordinator's breeding rules, apart from SQL and Ray: which trial is bred next, and when a
finished trial may become a parent.

- Trials are numbered in breeding order; trial n belongs to generation n // population, and no
  more than the campaign's total are bred.
- Asynchronous (the default): a free worker breeds at once from whatever has completed.
- `sync` (YOLOv5's loop when population is 1): generation g is bred only once every generation
  before it is closed, and a completed trial becomes a parent only when its generation closes, so
  the children repeat exactly whatever order the trials of a generation finish in.
- Pruned and failed search trials reach the searcher the same way (never as parents: Optuna's
  study is told how they ended).

After the search, a confirmation stage (evolver/confirmation.py) may be the source of the
remaining trials: once every search trial has finished, `confirmation()` plans them (from SQL) and
they follow the search's numbers, in the generation after its last, with `stage` "confirm".

The coordinator feeds it from SQL and from results; `benchmarks/search_simulation.py` feeds it
simulated results with many more workers than a test machine has — the same rules either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evolver.searcher import Observation, Searcher, Suggestion
from evolver.tally import CampaignTally


@dataclass(frozen=True)
class Child:
    number: int
    generation: int
    suggestion: Suggestion
    stage: str = "search"  # or "confirm": a retraining planned by the confirmation stage


class Breeding:
    def __init__(self, searcher: Searcher, tally: CampaignTally, *, sync: bool, shared_seed: int | None = None,
                 confirmation: Callable[[], Sequence[Suggestion]] | None = None) -> None:
        """`shared_seed`: every search trial trains with this seed (`trial_seeds: shared`).
        `confirmation`: plans the trials after the search (called once, when it has finished)."""
        self.searcher = searcher
        self.tally = tally
        self.sync = sync
        self.shared_seed = shared_seed
        self._confirmation = confirmation
        self._plan: list[Suggestion] | None = None
        self._held: defaultdict[int, list[Observation]] = defaultdict(list)  # sync: until the generation closes
        self._workers = 0

    def workers_changed(self, workers: int) -> None:
        """The number of workers (trials that can run at once); the searcher hears of changes."""
        if workers != self._workers:
            self._workers = workers
            self.searcher.workers_changed(workers)

    def next_child(self) -> Child | None:
        """Breed the next trial, or None: all bred, (sync) its generation must wait, or the
        confirmation waits for the search to finish."""
        number = self.tally.next_number
        if number >= self.tally.total:
            return None
        if number >= self.tally.searched:
            return self._next_confirmation(number)
        generation = self.tally.generation_of(number)
        if self.sync and not self.tally.earlier_generations_closed(generation):
            return None
        suggestion = self.searcher.suggest(number)
        if self.shared_seed is not None:
            suggestion = Suggestion(suggestion.hyp, suggestion.parents, self.shared_seed)
        self.tally.next_number = number + 1
        return Child(number, generation, suggestion)

    def _next_confirmation(self, number: int) -> Child | None:
        if self._confirmation is None or not self.tally.search_done:
            return None
        if self._plan is None:  # the search is over: plan once, and the campaign's total is now exact
            self._plan = list(self._confirmation())
            self.tally.total = self.tally.searched + len(self._plan)
        index = number - self.tally.searched
        if index >= len(self._plan):
            return None
        self.tally.next_number = number + 1
        return Child(number, self.tally.generation_of(self.tally.searched - 1) + 1, self._plan[index], "confirm")

    def completed(self, generation: int, observation: Observation) -> None:
        """A finished search trial (`observation.outcome`): the searcher hears of it now, or (sync)
        once its generation closes; only a completed one may become a parent."""
        if self.sync and generation not in self.tally.closed:
            self._held[generation].append(observation)
            return
        self.searcher.observe(observation)

    def generation_closed(self, generation: int) -> None:
        """Every trial of `generation` finished: its completed trials become parents, in number order."""
        self.tally.closed.add(generation)
        for observation in sorted(self._held.pop(generation, []), key=lambda o: o.number):
            self.searcher.observe(observation)
