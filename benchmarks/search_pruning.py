"""What early stopping could save on the demo task: stopping rules replayed over the real ledger.

The campaigns that ran without early stopping recorded every trial's fitness after each epoch, so
a stopping rule can be replayed over them: walk a campaign's trials in the order they started,
judge each one's epoch-e fitness against the trials the rule would have let finish (those whose
epoch e ended before this one's), and charge a stopped trial only the share of a full trial's
time it would have used. What that share is comes from the campaigns that really pruned: the
wall time of their trials stopped after e + 1 epochs over that of their completed ones.

Per rule it prints the share of trials stopped, the worker-seconds saved, how often the
campaign's best trial would have been stopped, and - as the bound no rule can beat - an oracle
that stops every trial except those that set a new best right after the earliest epoch allowed.

The replay holds each search's path fixed: had trials been stopped, the GA would have bred from
other parents and spent the saved seconds on more trials. It measures what stopping saves, not
what the search would then have found.

    python -m benchmarks.search_pruning [--ledger L]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.search_campaigns import CONFIGS, LEDGER
from benchmarks.search_report import CAMPAIGN, ledger_trials
from evolver.campaign import EarlyStopping

RULES = ((0.5, 2), (0.5, 1), (0.25, 2), (0.25, 1))  # (percentile as a fraction, min_epochs); 0.5 = median
MIN_TRIALS = EarlyStopping().min_trials  # completed trials at an epoch before a rule judges anyone


@dataclass(frozen=True)
class Replay:
    stopped_share: float  # of the campaign's completed trials
    saved_share: float  # of the worker-seconds they used
    best_stopped: bool  # the campaign's best trial would have been stopped


def stop_costs(trials: pd.DataFrame) -> dict[int, float]:
    """epoch index e -> wall time of a trial stopped after epoch e, as a share of a completed one's
    (medians over the campaigns that pruned, each pruned trial against its own campaign).
    `trials`: ledger rows of one or more campaigns, as `search_report.ledger_trials` reads them."""
    duration = trials["end_s"] - trials["start_s"]
    typical = duration.where(trials["status"] == "completed").groupby(
        [trials[column] for column in CAMPAIGN]).transform("median")
    stopped_after = trials["epochs"].map(len) - 1
    pruned = (trials["status"] == "pruned") & (stopped_after >= 0)
    shares = (duration / typical)[pruned].dropna()  # a campaign without a completed trial has no typical one
    return {int(epoch): float(share) for epoch, share in shares.groupby(stopped_after[pruned]).median().items()}


def cost_at(costs: dict[int, float], epoch: int, last: int) -> float:
    """The measured share for a trial stopped after `epoch`; where none stopped there, linear
    between the nearest measured epoch below (or nothing done) and the trial's end (`last`, 1.0)."""
    if epoch in costs:
        return costs[epoch]
    below = max((e for e in costs if e < epoch), default=None)
    start_epoch, start_cost = (below, costs[below]) if below is not None else (-1, 0.0)
    above = min((e for e in costs if e > epoch), default=None)
    end_epoch, end_cost = (above, costs[above]) if above is not None else (last, 1.0)
    return start_cost + (end_cost - start_cost) * (epoch - start_epoch) / (end_epoch - start_epoch)


def replay(trials: pd.DataFrame, percentile: float, min_epochs: int, costs: dict[int, float],
           min_trials: int = MIN_TRIALS, stopped_count: bool = False) -> Replay:
    """One unpruned campaign's completed trials under a stopping rule (see the module's text).

    A trial is stopped at the first epoch e >= min_epochs - 1 (0-based) whose fitness is below
    the `percentile` of the reference's epoch-e fitness: the trials that finished under the rule
    and had reached e by then - the rule `evolver.pruning.MedianPruner` applies with percentile
    0.5 - or, with `stopped_count`, every trial that had reached e, stopped ones included."""
    done = trials[trials["status"] == "completed"].sort_values("start_s", kind="stable")
    reference: dict[int, list[tuple[float, float]]] = defaultdict(list)  # epoch -> (time reached, fitness)
    stopped, saved, best_stopped = 0, 0.0, False
    best = done["fitness"].idxmax() if len(done) else None
    for trial in done.itertuples():
        duration = trial.end_s - trial.start_s
        last = len(trial.epochs) - 1
        share = {e: cost_at(costs, e, last) for e in range(last + 1)}
        reached_at = {e: trial.start_s + share[e] * duration for e in range(last + 1)}
        stopped_at = None
        for epoch in range(min_epochs - 1, last):
            known = [value for when, value in reference[epoch] if when <= reached_at[epoch]]
            if len(known) >= min_trials and trial.epochs[epoch] < np.quantile(known, percentile):
                stopped_at = epoch
                break
        if stopped_at is None:
            for epoch, value in enumerate(trial.epochs):  # known to the rule once the trial ends
                reference[epoch].append((trial.end_s, value))
            continue
        stopped += 1
        saved += (1.0 - share[stopped_at]) * duration
        best_stopped = best_stopped or trial.Index == best
        if stopped_count:
            for epoch in range(stopped_at + 1):
                reference[epoch].append((reached_at[epoch], trial.epochs[epoch]))
    used = float((done["end_s"] - done["start_s"]).sum())
    return Replay(stopped / len(done), saved / used, best_stopped)


def oracle_saving(trials: pd.DataFrame, min_epochs: int, costs: dict[int, float]) -> float:
    """Worker-seconds saved by stopping, after epoch min_epochs - 1, every completed trial that does
    not set a new best (in the order trials ended): what a rule that never errs could save."""
    done = trials[trials["status"] == "completed"].sort_values("end_s", kind="stable")
    duration = done["end_s"] - done["start_s"]
    new_best = done["fitness"] > done["fitness"].cummax().shift(fill_value=-math.inf)
    share = done["epochs"].map(lambda curve: cost_at(costs, min_epochs - 1, len(curve) - 1))
    return float(((1.0 - share) * duration)[~new_best].sum() / duration.sum())


def report_pruning(ledger: Path) -> dict:
    trials = ledger_trials(ledger)
    costs = stop_costs(trials)
    unpruned = [campaign for (config, _), campaign in trials.groupby(CAMPAIGN, sort=False)
                if "early_stopping" not in CONFIGS[config].spec]
    if not unpruned or not costs:
        print("\nearly-stopping replay: needs campaigns with and without early stopping in the ledger")
        return {}
    print("\nearly stopping replayed over the %d campaigns that ran without it (search paths held fixed)"
          % len(unpruned))
    print("a trial stopped after epoch e costs this share of a completed one (measured on the pruned "
          "campaigns): " + ", ".join(f"epoch {e + 1}: {c:.2f}" for e, c in sorted(costs.items())))
    print("reference: 'finished' = the trials the rule let finish (evolver's MedianPruner, as Optuna's); "
          "'all' = every trial that reached the epoch, stopped ones included")
    figures: dict = {"stop_costs": costs}
    rows: dict[str, dict] = {}
    for percentile, min_epochs in RULES:
        if min_epochs - 1 not in costs:
            continue
        for stopped_count in (False, True):
            replays = pd.DataFrame([replay(t, percentile, min_epochs, costs, stopped_count=stopped_count)
                                    for t in unpruned])
            reference = "all" if stopped_count else "finished"
            name = ("median" if percentile == 0.5 else f"{int(percentile * 100)}th percentile") + \
                f" of {reference}, from epoch {min_epochs}"
            stopped, saved = float(replays["stopped_share"].mean()), float(replays["saved_share"].mean())
            cut = int(replays["best_stopped"].sum())
            figures[f"replay_{percentile}_{min_epochs}_{reference}"] = (stopped, saved, cut)
            rows[name] = {"stopped": stopped, "saved": saved, "best stopped": f"{cut} of {len(unpruned)}"}
    for min_epochs in sorted({m for _, m in RULES}):
        if min_epochs - 1 in costs:
            bound = float(pd.Series([oracle_saving(t, min_epochs, costs) for t in unpruned]).mean())
            figures[f"oracle_{min_epochs}"] = bound
            rows[f"oracle, from epoch {min_epochs}"] = {"stopped": math.nan, "saved": bound,
                                                        "best stopped": f"0 of {len(unpruned)}"}
    if rows:
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.columns.name = "rule"
        print(table.to_string(float_format="{:.2f}".format, na_rep=""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", type=Path, default=LEDGER)
    report_pruning(parser.parse_args().ledger)


if __name__ == "__main__":
    main()
