"""The confirmation stage: the campaign's answer is a mean over fresh seeds, not its luckiest trial.

A search trial's fitness is one noisy draw (the training seed alone moves it by as much as a
search gains), and the best of N draws is biased upward: the winner's curse. So once the search's
last trial has finished, the best `top_k` distinct hyperparameters and the base are trained again,
`seeds` times each, with training seeds no search trial used, and scored on a split the search
never saw (the data's `test:` when it has one). The winner is the candidate with the best
confirmed mean, reported with its standard error beside the base measured the same way.

The stage is a source of trials like a searcher (`Breeding` asks it once the search is done):
its plan is a pure function of the stored search trials, which are finished and frozen by then,
so a resumed coordinator plans exactly the same retrainings and reruns none that finished.
Every seed trains every candidate (seed-major order), so a cancelled stage leaves matched pairs.

This module holds the planning and the report; both read only trial records, never Ray.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from evolver.campaign import CampaignSpec, ConfirmSpec
from evolver.lifecycle import ENDED
from evolver.ranking import ranked
from evolver.searcher import Suggestion, training_seed
from evolver.store import CampaignRecord, TrialRecord
from yolo.synthetic import BUILTIN_DATASETS

_CONFIRM_STREAM = 7_919  # the confirmation seeds' own random stream, apart from every trial's


def shared_training_seed(campaign_seed: int) -> int:
    """The one training seed of every search trial under `trial_seeds: shared`: the seed the base
    trial (number 0) draws from its generator, as every searcher draws it first."""
    return training_seed(np.random.default_rng([campaign_seed, 0]))


def confirm_split(spec: CampaignSpec) -> str:
    """The split retrainings are scored on: the one the spec names, else the data's test split
    when it has one (the built-in datasets do), else val."""
    if spec.confirm.split is not None:
        return spec.confirm.split
    if spec.data in BUILTIN_DATASETS:
        return "test"
    try:
        raw = yaml.safe_load(Path(spec.data).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "val"  # the trials will report the unreadable yaml themselves
    return "test" if isinstance(raw, dict) and raw.get("test") else "val"


def _hyp_key(hyp: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(hyp.items()))


@dataclass(frozen=True)
class Candidate:
    """Hyperparameters to confirm: the base, or the best search trial with these values."""

    hyp: dict[str, float]
    is_base: bool
    source_trial: int | None  # the search trial they come from (for the base: the best base trial)
    search_fitness: float | None  # that trial's search fitness (None: the base never completed)

    @property
    def label(self) -> str:
        return "base" if self.is_base else f"trial {self.source_trial}"


def choose_candidates(search_trials: Iterable[TrialRecord], base_hyp: dict[str, float], top_k: int
                      ) -> list[Candidate]:
    """The base first, then the best `top_k` distinct hyperparameters of the completed search
    trials other than the base (a set trained twice counts once, by its best trial)."""
    best_first = ranked(search_trials)
    base_key = _hyp_key(base_hyp)
    base_trial = next((t for t in best_first if _hyp_key(t.hyp) == base_key), None)
    candidates = [Candidate(dict(base_hyp), True, base_trial and base_trial.number,
                            base_trial and base_trial.fitness)]
    seen = {base_key}
    for trial in best_first:
        key = _hyp_key(trial.hyp)
        if key in seen:
            continue
        seen.add(key)
        candidates.append(Candidate(dict(trial.hyp), False, trial.number, trial.fitness))
        if len(candidates) == top_k + 1:
            break
    return candidates


def confirmation_seeds(campaign_seed: int, used: set[int], count: int) -> list[int]:
    """`count` distinct training seeds, none of them in `used` (the search trials' seeds)."""
    rng = np.random.default_rng([campaign_seed, _CONFIRM_STREAM])
    seeds: list[int] = []
    while len(seeds) < count:
        seed = training_seed(rng)
        if seed not in used and seed not in seeds:
            seeds.append(seed)
    return seeds


def base_hyp_of(search_trials: Sequence[TrialRecord]) -> dict[str, float] | None:
    """The base hyperparameters as stored: the first search trial's (every searcher trains the
    base first), so planning and the report read the base from SQL alone."""
    first = min(search_trials, key=lambda t: t.number, default=None)
    return None if first is None else dict(first.hyp)


def plan(confirm: ConfirmSpec, campaign_seed: int, search_trials: Sequence[TrialRecord]) -> list[Suggestion]:
    """The confirmation trials in order: for each fresh seed, every candidate (base first). A
    candidate's trial names its source trial as its parent; the base's has none. Empty when the
    stage is off or no search trial completed."""
    if not confirm.enabled or not any(t.status == "completed" for t in search_trials):
        return []
    candidates = choose_candidates(search_trials, base_hyp_of(search_trials), confirm.top_k)
    seeds = confirmation_seeds(campaign_seed, {t.seed for t in search_trials}, confirm.seeds)
    return [Suggestion(dict(c.hyp), () if c.is_base else (c.source_trial,), seed)
            for seed in seeds for c in candidates]


# --------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class CandidateResult:
    candidate: Candidate
    fitnesses: tuple[float, ...]  # completed retrainings, on the confirmation split
    trials: tuple[int, ...]  # numbers of its confirmation trials (any status)
    planned: int  # retrainings it gets (= seeds)

    @property
    def n(self) -> int:
        return len(self.fitnesses)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.fitnesses)) if self.fitnesses else None

    @property
    def se(self) -> float | None:
        """Standard error of the mean (sample standard deviation / sqrt(n)); None below 2 runs."""
        if self.n < 2:
            return None
        return float(np.std(self.fitnesses, ddof=1) / math.sqrt(self.n))

    @property
    def optimism(self) -> float | None:
        """Search fitness − confirmed mean: how much luck (and split) the search figure held."""
        if self.candidate.search_fitness is None or self.mean is None:
            return None
        return self.candidate.search_fitness - self.mean


@dataclass(frozen=True)
class ConfirmationReport:
    """What the confirmation found. `state`: "off" (confirm: false), "confirming" (the search or
    the retrainings still run), "confirmed" (every retraining finished), "not confirmed" (the
    campaign ended before they did: the search's raw maximum is all there is)."""

    state: str
    split: str
    epochs: int
    seeds: int
    candidates: tuple[CandidateResult, ...] = ()  # base first, then by search rank
    search_seconds: float = 0.0  # worker-seconds of the finished search trials
    confirm_seconds: float = 0.0  # ... and of the finished retrainings
    notes: tuple[str, ...] = field(default=())

    @property
    def split_selected(self) -> bool:
        """True when the retrainings were scored on val, the split that also selected them."""
        return self.split == "val"

    @property
    def base(self) -> CandidateResult | None:
        return next((c for c in self.candidates if c.candidate.is_base), None)

    @property
    def winner(self) -> CandidateResult | None:
        """The best confirmed mean (earlier candidates win ties), once every retraining finished.
        It may be the base: then the search did not beat it."""
        if self.state != "confirmed":
            return None
        scored = [c for c in self.candidates if c.mean is not None]
        return max(scored, key=lambda c: c.mean, default=None)  # max keeps the first of equals

    @property
    def difference_se(self) -> float | None:
        """(winner mean − base mean) / sqrt(SE_winner² + SE_base²): the gain in standard errors."""
        winner, base = self.winner, self.base
        if winner is None or base is None or winner is base or winner.se is None or base.se is None:
            return None
        spread = math.hypot(winner.se, base.se)
        return (winner.mean - base.mean) / spread if spread > 0 else None

    @property
    def spearman(self) -> float | None:
        """Rank agreement between search fitness and confirmed mean over the candidates that have
        both (None below 3): does the search's order survive fresh seeds and unseen images?"""
        pairs = [(c.candidate.search_fitness, c.mean) for c in self.candidates
                 if c.candidate.search_fitness is not None and c.mean is not None]
        if len(pairs) < 3:
            return None
        search, confirmed = (_ranks([p[i] for p in pairs]) for i in (0, 1))
        if np.std(search) == 0 or np.std(confirmed) == 0:
            return None
        return float(np.corrcoef(search, confirmed)[0, 1])

    @property
    def raw_best(self) -> CandidateResult | None:
        """The search's best trial (what a plain GA would hand out), confirmed like the rest."""
        searched = [c for c in self.candidates if c.candidate.search_fitness is not None]
        return max(searched, key=lambda c: c.candidate.search_fitness, default=None)

    @property
    def cost_share(self) -> float | None:
        """The retrainings' share of the campaign's worker-seconds."""
        total = self.search_seconds + self.confirm_seconds
        return self.confirm_seconds / total if total > 0 else None

    def summary_lines(self) -> list[str]:
        """The figures in a few lines, for `evolver best` / `status` and hyp_evolved.yaml's header."""
        if self.state == "off":
            return ["confirmation: off (confirm: false) -- the figures are the search's raw maximum"]
        where = f"{self.split} split" + (" (the split that selected them: no unseen split)" if self.split_selected
                                         else ", unseen by the search")
        head = f"confirmation: {self.state}; {self.seeds} fresh seed(s) x {self.epochs} epochs on the {where}"
        lines = [head]
        winner, base = self.winner, self.base
        if winner is not None:
            gain = "" if self.difference_se is None else f", {self.difference_se:+.1f} SE vs base"
            lines.append(f"winner: {winner.candidate.label}, confirmed fitness {_mean_se(winner)}{gain}")
        if base is not None:
            lines.append(f"base: confirmed fitness {_mean_se(base)}")
        if winner is not None and winner.optimism is not None:
            lines.append(f"search fitness {winner.candidate.search_fitness:.5f} (optimism {winner.optimism:+.5f})")
        if self.spearman is not None:
            lines.append(f"rank agreement search vs confirmed (Spearman): {self.spearman:+.2f}")
        if self.state == "not confirmed":
            lines.append("not confirmed: the campaign ended before its retrainings finished; the search's best "
                         "trial is a single noisy draw")
        return lines


def _mean_se(result: CandidateResult) -> str:
    if result.mean is None:
        return "- (no retraining completed)"
    se = "n/a" if result.se is None else f"{result.se:.5f}"
    return f"{result.mean:.5f} ± {se} (n={result.n})"


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in set(values):
        tied = [i for i, v in enumerate(values) if v == value]
        ranks[tied] = np.mean(ranks[tied])
    return ranks


def _worker_seconds(trials: Iterable[TrialRecord]) -> float:
    return sum((t.ended_at - t.started_at).total_seconds() for t in trials
               if t.finished and t.started_at is not None and t.ended_at is not None)


def build_report(spec: CampaignSpec, trials: Sequence[TrialRecord], *, campaign_ended: bool,
                 split: str | None = None) -> ConfirmationReport:
    """The report from a campaign's stored trials. `campaign_ended`: no coordinator will run the
    remaining retrainings (completed, cancelled or failed), so unfinished means not confirmed."""
    confirm = spec.confirm
    search = [t for t in trials if t.stage == "search"]
    retrainings = [t for t in trials if t.stage == "confirm"]
    split = split or (retrainings[0].split if retrainings else confirm_split(spec))
    common = dict(split=split, epochs=spec.epochs_of("confirm"), seeds=confirm.seeds,
                  search_seconds=_worker_seconds(search), confirm_seconds=_worker_seconds(retrainings))
    if not confirm.enabled:
        return ConfirmationReport(state="off", **common)
    search_done = len(search) >= spec.total_trials and all(t.finished and t.status != "cancelled" for t in search)
    if not search_done:
        return ConfirmationReport(state="not confirmed" if campaign_ended else "confirming", **common)
    base_hyp = base_hyp_of(search)
    candidates = choose_candidates(search, base_hyp, confirm.top_k) if base_hyp is not None else []
    results = []
    for candidate in candidates:
        mine = [t for t in retrainings if t.hyp == candidate.hyp and
                (t.parents == () if candidate.is_base else t.parents == (candidate.source_trial,))]
        results.append(CandidateResult(
            candidate, tuple(t.fitness for t in mine if t.status == "completed" and t.fitness is not None
                             and math.isfinite(t.fitness)),
            tuple(t.number for t in mine), confirm.seeds))
    planned = len(candidates) * confirm.seeds
    finished = sum(1 for t in retrainings if t.finished and t.status != "cancelled")
    if planned and finished >= planned:
        state = "confirmed"
    else:
        state = "not confirmed" if campaign_ended else "confirming"
    return ConfirmationReport(state=state, candidates=tuple(results), **common)


def campaign_report(record: CampaignRecord, trials: Sequence[TrialRecord]) -> ConfirmationReport:
    """The report of a stored campaign as it stands (the CLI, the API and the winner export): one
    that has ended (completed, cancelled, failed) will run no more retrainings."""
    return build_report(CampaignSpec.model_validate(record.spec), trials, campaign_ended=record.status in ENDED)
