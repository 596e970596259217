"""What the coordinator counts about its campaign's trials, in one object rebuilt from SQL.

The counts by final status, the trials finished per generation, the generations closed, the best
trial and the next trial number: SQL holds all of it, and this is the coordinator's running view,
made from the stored trials when it starts (`CampaignTally.rebuild`) and updated as results come
in. Pure bookkeeping — no SQL, no Ray — so it is tested on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from evolver.ranking import better
from evolver.store import FINISHED_TRIAL_STATUSES, TrialRecord


@dataclass
class CampaignTally:
    population: int  # trials per generation
    total: int  # trials the campaign runs: the search's, then its confirmation's (set once planned)
    counts: Counter[str] = field(default_factory=Counter)  # final status -> trials
    finished_in: Counter[int] = field(default_factory=Counter)  # generation -> finished trials
    closed: set[int] = field(default_factory=set)  # generations whose row SQL holds
    best: TrialRecord | None = None
    next_number: int = 0  # the number the next bred trial gets
    search_total: int | None = None  # trials of the search (None: all of `total`)
    search_finished: int = 0

    @classmethod
    def rebuild(cls, trials: Iterable[TrialRecord], population: int, total: int,
                search_total: int | None = None) -> CampaignTally:
        """The tally of the stored trials that stay finished (the caller re-queues interrupted and
        cancelled ones; they count when they finish again)."""
        tally = cls(population, total, search_total=search_total)
        for trial in trials:
            tally.next_number = max(tally.next_number, trial.number + 1)
            if trial.status in FINISHED_TRIAL_STATUSES and trial.status != "cancelled":
                tally.finish(trial)
        return tally

    def finish(self, trial: TrialRecord) -> None:
        """`trial` (as recorded, with its final status) finished. Confirmation retrainings count
        as trials, but belong to no generation and never to the search's best."""
        self.counts[trial.status] += 1
        if getattr(trial, "stage", "search") != "search":
            return
        self.search_finished += 1
        self.finished_in[trial.generation] += 1
        if trial.status == "completed" and better(trial, self.best):
            self.best = trial

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        return self.finished >= self.total

    @property
    def searched(self) -> int:
        """How many trials the search breeds."""
        return self.total if self.search_total is None else self.search_total

    @property
    def search_done(self) -> bool:
        """Every search trial finished: the confirmation stage may plan."""
        return self.search_finished >= self.searched

    def may_be_complete(self, generation: int) -> bool:
        """Whether every trial of the generation may have finished (SQL decides: a generation's
        trials can also have finished under an earlier coordinator)."""
        return generation not in self.closed and self.finished_in[generation] >= self.population

    def generation_of(self, number: int) -> int:
        return number // self.population

    def earlier_generations_closed(self, generation: int) -> bool:
        """--sync: generation g is bred only from complete generations < g."""
        return all(g in self.closed for g in range(generation))

    def generation_label(self, generations: int) -> str:
        current = min(self.search_finished // self.population, generations - 1)
        return f"{current + 1}/{generations}"
