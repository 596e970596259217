"""The campaign's run folder, kept current after every finished trial: `evolve.csv` (one row per
completed search trial, YOLOv5's columns), `hyp_evolved.yaml` and the weights of the best
`keep_top_k` search trials (the others are deleted and their artefact rows removed) and of every
confirmation retraining.

`hyp_evolved.yaml` holds the search's best trial, marked "not confirmed", until the confirmation
stage has finished; from then on it holds the confirmed winner (the best mean over fresh seeds on
the unseen split) with its figures and the base's in the header.

Only the coordinator calls this; SQL stays the source of truth, the files are views of it, so a
resumed campaign rewrites them from SQL first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from evolver.campaign import CampaignSpec
from evolver.confirmation import ConfirmationReport, build_report
from evolver.ranking import better, ranked
from evolver.exchange import append_evolve_csv, metrics_text, write_evolve_csv, write_hyp_evolved
from evolver.store import Store, TrialRecord

log = logging.getLogger(__name__)

WEIGHTS_KIND = "weights"


def weights_artefact_name(number: int) -> str:
    return f"trial-{number:05d}-best.pt"


class RunFolder:
    def __init__(self, store: Store, campaign_id: int, name: str, path: Path, spec: CampaignSpec):
        self.store, self.campaign_id, self.name = store, campaign_id, name
        self.path = Path(path)
        self.spec = spec
        self.keep_top_k = spec.keep_top_k
        self._confirmed = False  # hyp_evolved.yaml holds the confirmed winner
        self.evolve_csv = self.path / "evolve.csv"
        self.hyp_evolved = self.path / "hyp_evolved.yaml"
        self._best: TrialRecord | None = None
        self._kept: list[TrialRecord] = []  # trials whose weights are on disk, best first

    def rebuild(self, completed: list[TrialRecord]) -> None:
        """Rewrite the files from SQL (start of a run or a resume)."""
        self.path.mkdir(parents=True, exist_ok=True)
        completed = [t for t in completed if t.stage == "search"]
        write_evolve_csv(self.evolve_csv, [(t.metrics, t.hyp) for t in completed])
        by_fitness = ranked(completed)
        self._best = by_fitness[0] if by_fitness else None
        if self._best is not None:
            self._write_best(len(completed))
        self.confirmation_changed()
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

    def add_retraining(self, trial: TrialRecord) -> None:
        """A confirmation retraining finished: its weights are kept whatever it scored (the
        exported model is the winner's retraining), then the confirmation is looked at again."""
        if trial.status == "completed" and trial.weights_path and Path(trial.weights_path).is_file():
            _remove(Path(trial.weights_path).parent / "last.pt")
            self.store.add_artefact(self.campaign_id, weights_artefact_name(trial.number), WEIGHTS_KIND,
                                    trial.weights_path, trial_number=trial.number)
        self.confirmation_changed()

    def confirmation_changed(self) -> ConfirmationReport:
        """Once every retraining has finished, hyp_evolved.yaml holds the confirmed winner."""
        report = build_report(self.spec, self.store.trials(self.campaign_id), campaign_ended=False)
        winner = report.winner
        if winner is not None:
            self._confirmed = True
            write_hyp_evolved(self.hyp_evolved, winner.candidate.hyp, campaign=self.name,
                              summary=report.summary_lines())
        return report

    def _write_best(self, trials_done: int) -> None:
        if self._confirmed:
            return
        trial = self._best
        note = ("not confirmed yet: one training's fitness on the split that selected it (optimistic); the "
                "confirmation stage retrains the best with fresh seeds" if self.spec.confirm.enabled else
                "confirmation off: one training's fitness on the split that selected it (optimistic)")
        write_hyp_evolved(self.hyp_evolved, trial.hyp, campaign=self.name, summary=[
            f"Best search trial: trial {trial.number}, generation {trial.generation}, fitness "
            f"{float(trial.fitness or 0.0):.5g} ({trials_done} trials finished)",
            f"Metrics: {metrics_text(trial.metrics)}", note])

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
