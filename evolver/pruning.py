"""Early stopping of trials, kept apart from the GA (Ray Tune's searcher / scheduler split).

The GA decides what to try next; a pruner decides, from per-epoch fitness, whether a running trial
is worth finishing. Neither YOLOv5's evolution nor its Ray Tune integration prunes GA trials; on
a cluster the saved epochs go straight into more trials.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Protocol


class Pruner(Protocol):
    def add_completed(self, curve: list[float]) -> None:
        """A completed trial's fitness per epoch (index = epoch)."""

    def should_prune(self, epoch: int, fitness: float) -> bool:
        """Whether a running trial whose fitness after `epoch` (0-based) is `fitness` should stop."""


class NoPruning:
    def add_completed(self, curve: list[float]) -> None:
        pass

    def should_prune(self, epoch: int, fitness: float) -> bool:
        return False


class MedianPruner:
    """Stop a trial whose fitness at epoch e is below the median of completed trials at e.

    Judges only from epoch `min_epochs` on (early epochs say little) and only once `min_trials`
    completed trials reached that epoch; pruned trials never enter the reference curves, so a
    bad streak cannot lower the bar.
    """

    def __init__(self, min_epochs: int = 2, min_trials: int = 3):
        self.min_epochs = min_epochs
        self.min_trials = min_trials
        self._by_epoch: dict[int, list[float]] = defaultdict(list)

    def add_completed(self, curve: list[float]) -> None:
        for epoch, value in enumerate(curve):
            self._by_epoch[epoch].append(value)

    def should_prune(self, epoch: int, fitness: float) -> bool:
        if epoch + 1 < self.min_epochs:
            return False
        reference = self._by_epoch.get(epoch, [])
        if len(reference) < self.min_trials:
            return False
        return fitness < statistics.median(reference)


def build_pruner(rule: str, min_epochs: int, min_trials: int) -> Pruner:
    if rule == "median":
        return MedianPruner(min_epochs, min_trials)
    if rule == "none":
        return NoPruning()
    raise ValueError(f"unknown early-stopping rule {rule!r} (expected 'none' or 'median')")
