"""TPE and CMA-ES: Optuna's samplers driven through ask/tell behind our `Searcher` interface.

Optuna is an optional extra (`pip install 'evolver[optuna]'`). Its study lives in memory only:
our SQL stays the record. Each free gene becomes a `FloatDistribution` within its limits (log
scale where `Gene.log_scale`); fixed genes keep the campaign's value.

The study learns exactly what was trained, and nothing else:
- Trial 0 trains the base hyperparameters, enqueued into the study so the sampler learns from it.
  A base outside the search space (a free gene beyond its limits, as `hyp: {mosaic: 1.0}` with
  `mosaic: {upper: 0.5}`) is still trained, but kept out of the study, and the log says so:
  clipped, the study would learn a point nobody trained; told with a distribution wide enough to
  hold it, the sampler would take that wider range as the search space (CMA-ES's intersection
  search space does) and propose trials beyond the limits.
- `suggest(number)` asks the study; `observe` tells it how the trial ended, in Optuna's own
  states: completed -> COMPLETE with its fitness (maximised); pruned -> PRUNED; failed, or
  completed with a non-finite fitness (diverged) -> FAIL. A told trial is no longer running, so
  TPE's constant liar counts a trial as bad only while it trains; `pending` names the trials
  asked and not told yet.
- A finished trial the study never asked for — one stored before a restart, or an imported
  YOLOv5 row — is added to the study as a finished trial in the same state: that is how the study
  is rebuilt from SQL on resume (the coordinator observes the stored completed, pruned and failed
  trials before it breeds). It too is kept out when it was trained outside the space: a free gene
  beyond its limits, or a fixed gene at another value than the campaign's (keys an imported row
  lacks take the campaign's value). TPE models every finished trial; CMA-ES keeps its state in
  its own trials, so a resumed CMA-ES campaign is warm-started from the stored completed trials
  instead (see `OptunaSearcher.study`).
- The sampler is seeded with the campaign seed and training seeds come from
  `default_rng([seed, number])`: the same seed and the same order of results give the same
  trials. Unlike the GA's, a suggestion also depends on how many asks came before it (the
  sampler's own random stream), so a resumed campaign continues differently from an
  uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np

from evolver.searcher import Observation, Suggestion, trial_generator
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "cmaes")
WARM_START_TRIALS = 10  # Optuna's warm start takes the best 10 % of its source trials: at least one
FIXED_GENE_TOLERANCE = 1e-9  # relative: a fixed gene read back from a file may differ in its last digits


def _optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("searcher tpe / cmaes needs Optuna: pip install 'evolver[optuna]'") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaSearcher:
    def __init__(self, space: SearchSpace, base_hyp: Mapping[str, float], seed: int,
                 sampler: Literal["tpe", "cmaes"]) -> None:
        _optuna()
        from optuna.distributions import FloatDistribution

        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        self._kind = sampler
        self._base = Hyperparameters.from_dict(base_hyp).to_dict()
        self._seed = int(seed)
        space.require_free_gene()
        self._distributions = {
            gene.name: FloatDistribution(gene.lower, gene.upper, log=gene.log_scale)
            for gene in space.genes if gene.free
        }
        self._fixed = {name: value for name, value in self._base.items() if name not in self._distributions}
        self._study = None  # made at the first suggestion, once the stored trials are known
        self._stored: list = []  # finished trials observed before that (FrozenTrial)
        self._running: dict[int, int] = {}  # our trial number -> the study's, asked and not told yet

    @property
    def pending(self) -> frozenset[int]:
        """Numbers of the trials the study asked for and was not told about yet (RUNNING there)."""
        return frozenset(self._running)

    @property
    def study(self):
        """The Optuna study, made on first use: TPE from everything observed so far; CMA-ES
        starting at the base hyperparameters, or — when completed trials were stored before (a
        resumed campaign) — warm-started from them (Optuna's `source_trials`; from the best of them
        while fewer than 10 are stored), since the state of a CMA-ES run cannot be rebuilt from its
        trials alone."""
        if self._study is None:
            optuna = _optuna()
            # A resumed campaign's sampler must not replay the random stream that bred its first
            # trials (TPE's first 10 are random draws): its seed also counts the stored trials.
            seed = self._seed if not self._stored else int(
                np.random.default_rng([self._seed, len(self._stored)]).integers(2**31))
            completed = [t for t in self._stored if t.state == optuna.trial.TrialState.COMPLETE]
            if self._kind == "tpe":
                # constant_liar: trials still training count as bad ones, so workers breeding at
                # the same time do not all propose the same point (no effect with one worker).
                sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
            elif len(completed) >= WARM_START_TRIALS:
                sampler = optuna.samplers.CmaEsSampler(source_trials=completed, seed=seed)
            else:  # from the base, or from the best stored trial while too few are stored to warm-start
                start = max(completed, key=lambda t: t.value).params if completed else self._base
                with warnings.catch_warnings():  # x0: deprecated since Optuna 4.9, removed in 6 (hence <6)
                    warnings.simplefilter("ignore", FutureWarning)
                    # Only where CMA-ES starts its search (its mean must lie within the limits): no
                    # trial is told at this point.
                    sampler = optuna.samplers.CmaEsSampler(x0=self._clipped_to_limits(start), seed=seed)
            self._study = optuna.create_study(direction="maximize", sampler=sampler)
            for trial in self._stored:
                self._study.add_trial(trial)
            self._stored = []
        return self._study

    def _clipped_to_limits(self, hyp: Mapping[str, float]) -> dict[str, float]:
        return {name: min(max(float(hyp[name]), d.low), d.high) for name, d in self._distributions.items()}

    def _outside_space(self, hyp: Mapping[str, float]) -> list[str]:
        """Why `hyp` (all 29 hyperparameters) is no point of the study's space; empty when it is one."""
        reasons = [f"{name}={hyp[name]} outside [{d.low}, {d.high}]"
                   for name, d in self._distributions.items() if not d.low <= hyp[name] <= d.high]
        reasons += [f"{name}={hyp[name]} where the campaign fixes {value}" for name, value in self._fixed.items()
                    if not math.isclose(hyp[name], value, rel_tol=FIXED_GENE_TOLERANCE)]
        return reasons

    def suggest(self, number: int) -> Suggestion:
        _, seed = trial_generator(self._seed, number)
        if number == 0:  # the base, told like any other trial when it lies inside the space
            outside = self._outside_space(self._base)
            if outside:
                log.warning("trial 0 trains the base hyperparameters, which lie outside the search space "
                            "(%s): the %s study will not learn from it", "; ".join(outside), self._kind)
                return Suggestion(dict(self._base), (), seed)
            self.study.enqueue_trial({name: self._base[name] for name in self._distributions},
                                     skip_if_exists=False)
        trial = self.study.ask(self._distributions)
        self._running[number] = trial.number
        hyp = dict(self._base) if number == 0 else {**self._base, **trial.params}
        return Suggestion(hyp, (), seed)

    def workers_changed(self, workers: int) -> None:
        """TPE's constant liar and CMA-ES's generations take trials in flight as they come."""

    def observe(self, observation: Observation) -> None:
        optuna = _optuna()
        if observation.scored:
            state, value = optuna.trial.TrialState.COMPLETE, float(observation.fitness)
        else:  # failed, pruned, or a diverged run (completed with a non-finite fitness)
            pruned = observation.outcome == "pruned"
            state, value = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.FAIL, None
        asked = self._running.pop(observation.number, None)
        if asked is not None:
            self.study.tell(asked, value, state=state)
            return
        # Finished before this process (resume), or an imported YOLOv5 row: a finished trial.
        unknown = sorted(set(observation.hyp) - set(self._base))
        if unknown:
            raise ValueError(f"trial {observation.number}: unknown hyperparameter(s) {', '.join(unknown)}")
        hyp = {**self._base, **observation.hyp}
        outside = self._outside_space(hyp)
        if outside:
            log.info("trial %d was trained outside the search space (%s): the %s study does not learn from it",
                     observation.number, "; ".join(outside), self._kind)
            return
        finished = optuna.trial.create_trial(
            state=state, value=value, params={name: float(hyp[name]) for name in self._distributions},
            distributions=self._distributions)
        if self._study is None:
            self._stored.append(finished)
        else:
            self._study.add_trial(finished)
