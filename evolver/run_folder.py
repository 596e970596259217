"""The campaign's run folder, kept current after every finished trial: `evolve.csv` (one row per
completed trial, YOLOv5's columns), `hyp_evolved.yaml` (the best trial so far) and the weights of
the best `keep_top_k` trials (the others are deleted and their artefact rows removed).

Only the coordinator calls this; SQL stays the source of truth, the files are views of it, so a
resumed campaign rewrites them from SQL first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from evolver.ranking import better, ranked
from evolver.exchange import append_evolve_csv, write_evolve_csv, write_hyp_evolved
from evolver.store import Store, TrialRecord

log = logging.getLogger(__name__)

WEIGHTS_KIND = "weights"


def weights_artefact_name(number: int) -> str:
    return f"trial-{number:05d}-best.pt"


class RunFolder:
    def __init__(self, store: Store, campaign_id: int, name: str, path: Path, keep_top_k: int):
        self.store, self.campaign_id, self.name = store, campaign_id, name
        self.path = Path(path)
        self.keep_top_k = keep_top_k
        self.evolve_csv = self.path / "evolve.csv"
        self.hyp_evolved = self.path / "hyp_evolved.yaml"
        self._best: TrialRecord | None = None
        self._kept: list[TrialRecord] = []  # trials whose weights are on disk, best first

    def rebuild(self, completed: list[TrialRecord]) -> None:
        """Rewrite the files from SQL (start of a run or a resume)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_evolve_csv(self.evolve_csv, [(t.metrics, t.hyp) for t in completed])
        by_fitness = ranked(completed)
        self._best = by_fitness[0] if by_fitness else None
        if self._best is not None:
            self._write_best(len(completed))
        names = {a.name for a in self.store.artefacts(self.campaign_id) if a.kind == WEIGHTS_KIND}
        self._kept = [t for t in by_fitness if weights_artefact_name(t.number) in names]

    def add_completed(self, trial: TrialRecord, trials_done: int) -> None:
        append_evolve_csv(self.evolve_csv, trial.metrics, trial.hyp)
        if better(trial, self._best):
            self._best = trial
        if self._best is not None:
            self._write_best(trials_done)  # every time: its header counts the trials finished
        if trial.weights_path and Path(trial.weights_path).is_file():
            _remove(Path(trial.weights_path).parent / "last.pt")  # optimizer state: trials never resume
            self._keep_weights(trial)

    def _write_best(self, trials_done: int) -> None:
        trial = self._best
        write_hyp_evolved(self.hyp_evolved, trial.hyp, campaign=self.name, trial=trial.number,
                          generation=trial.generation, fitness=trial.fitness or 0.0, metrics=trial.metrics,
                          trials_done=trials_done)

    def _keep_weights(self, trial: TrialRecord) -> None:
        """Record the trial's weights if they rank in the top k; delete whatever drops out."""
        candidates = ranked([*self._kept, trial])
        keep, drop = candidates[: self.keep_top_k], candidates[self.keep_top_k:]
        if trial not in candidates:  # no finite fitness: its weights are not worth keeping
            drop.append(trial)
        if trial in keep:
            self.store.add_artefact(self.campaign_id, weights_artefact_name(trial.number), WEIGHTS_KIND,
                                    trial.weights_path, trial_number=trial.number)
        for loser in drop:
            if loser is not trial:
                self.store.remove_artefact(self.campaign_id, weights_artefact_name(loser.number))
            if loser.weights_path:
                _remove(Path(loser.weights_path))
        self._kept = keep


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
