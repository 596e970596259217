"""TPE and CMA-ES: Optuna's samplers driven through ask/tell behind our `Searcher` interface.

Optuna is an optional extra (`pip install 'evolver[optuna]'`). Its study lives in memory only:
our SQL stays the record. Each free gene becomes a `FloatDistribution` within its limits (log
scale where `Gene.log_scale`); fixed genes keep the campaign's value.

- Trial 0 trains the base hyperparameters, enqueued into the study so the sampler learns from it.
- `suggest(number)` asks the study; `observe` tells it the trial's fitness (maximised).
- A finished trial the study never asked for — one stored before a restart, or an imported
  YOLOv5 row — is added to the study as a finished trial: that is how the study is rebuilt from
  SQL on resume (the coordinator observes the stored completed trials before it breeds). TPE
  models every finished trial; CMA-ES keeps its state in its own trials, so a resumed CMA-ES
  campaign is warm-started from the stored trials instead (see `OptunaSearcher.study`).
- The sampler is seeded with the campaign seed and training seeds come from
  `default_rng([seed, number])`: the same seed and the same order of results give the same
  trials. Unlike the GA's, a suggestion also depends on how many asks came before it (the
  sampler's own random stream), so a resumed campaign continues differently from an
  uninterrupted one.
- Trials that fail or are pruned are never told: Optuna keeps them as running, which TPE and
  CMA-ES both ignore.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np

from evolver.searcher import Observation, Suggestion, training_seed
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters

SAMPLERS = ("tpe", "cmaes")
WARM_START_TRIALS = 10  # Optuna's warm start takes the best 10 % of its source trials: at least one


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
        self._distributions = {
            gene.name: FloatDistribution(gene.lower, gene.upper, log=gene.log_scale)
            for gene in space.genes if gene.free
        }
        if not self._distributions:
            raise ValueError("search space has no gene with gain > 0 and room between its limits")
        self._study = None  # made at the first suggestion, once the stored trials are known
        self._stored: list = []  # finished trials observed before that (FrozenTrial)
        self._asked: dict[int, object] = {}  # trial number -> optuna.Trial not told yet

    @property
    def study(self):
        """The Optuna study, made on first use: TPE from everything observed so far; CMA-ES
        starting at the base hyperparameters, or — when trials were stored before (a resumed
        campaign) — warm-started from them (Optuna's `source_trials`; from the best of them while
        fewer than 10 are stored), since the state of a CMA-ES run cannot be rebuilt from its
        trials alone."""
        if self._study is None:
            optuna = _optuna()
            # A resumed campaign's sampler must not replay the random stream that bred its first
            # trials (TPE's first 10 are random draws): its seed also counts the stored trials.
            seed = self._seed if not self._stored else int(
                np.random.default_rng([self._seed, len(self._stored)]).integers(2**31))
            if self._kind == "tpe":
                # constant_liar: trials still training count as bad ones, so workers breeding at
                # the same time do not all propose the same point (no effect with one worker).
                sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
            elif len(self._stored) >= WARM_START_TRIALS:
                sampler = optuna.samplers.CmaEsSampler(source_trials=list(self._stored), seed=seed)
            else:  # from the base, or from the best stored trial while too few are stored to warm-start
                start = max(self._stored, key=lambda t: t.value).params if self._stored else self._base
                with warnings.catch_warnings():  # x0: deprecated since Optuna 4.9, removed in 6 (hence <6)
                    warnings.simplefilter("ignore", FutureWarning)
                    sampler = optuna.samplers.CmaEsSampler(x0=self._within_limits(start), seed=seed)
            self._study = optuna.create_study(direction="maximize", sampler=sampler)
            for trial in self._stored:
                self._study.add_trial(trial)
            self._stored = []
        return self._study

    def _within_limits(self, hyp: Mapping[str, float]) -> dict[str, float]:
        return {name: min(max(float(hyp.get(name, self._base[name])), d.low), d.high)
                for name, d in self._distributions.items()}

    def suggest(self, number: int) -> Suggestion:
        if number < 0:
            raise ValueError(f"trial numbers start at 0, got {number}")
        seed = training_seed(np.random.default_rng([self._seed, number]))
        if number == 0:  # the base, told like any other trial
            self.study.enqueue_trial(self._within_limits(self._base), skip_if_exists=False)
            self._asked[0] = self.study.ask(self._distributions)
            return Suggestion(dict(self._base), (), seed)
        trial = self.study.ask(self._distributions)
        self._asked[number] = trial
        return Suggestion({**self._base, **trial.params}, (), seed)

    def workers_changed(self, workers: int) -> None:
        """TPE's constant liar and CMA-ES's generations take trials in flight as they come."""

    def observe(self, observation: Observation) -> None:
        if not math.isfinite(observation.fitness):
            return  # a diverged run: left untold, as failed trials are
        trial = self._asked.pop(observation.number, None)
        if trial is not None:
            self.study.tell(trial, float(observation.fitness))
            return
        # Finished before this process (resume), or an imported YOLOv5 row: a finished trial.
        from optuna.trial import create_trial

        finished = create_trial(params=self._within_limits({**self._base, **observation.hyp}),
                                distributions=self._distributions, value=float(observation.fitness))
        if self._study is None:
            self._stored.append(finished)
        else:
            self._study.add_trial(finished)
