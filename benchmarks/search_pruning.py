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
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.search_campaigns import CONFIGS, LEDGER
from benchmarks.search_report import campaigns
from evolver.campaign import EarlyStopping

RULES = ((0.5, 2), (0.5, 1), (0.25, 2), (0.25, 1))  # (percentile as a fraction, min_epochs); 0.5 = median
MIN_TRIALS = EarlyStopping().min_trials  # completed trials at an epoch before a rule judges anyone


@dataclass(frozen=True)
class Replay:
    stopped_share: float  # of the campaign's completed trials
    saved_share: float  # of the worker-seconds they used
    best_stopped: bool  # the campaign's best trial would have been stopped


def stop_costs(grouped: dict[str, dict[int, list[dict]]]) -> dict[int, float]:
    """epoch index e -> wall time of a trial stopped after epoch e, as a share of a completed one's
    (medians over the campaigns that pruned, each pruned trial against its own campaign).
    `grouped`: config -> seed -> trials, as `search_report.campaigns` reads them."""
    shares: dict[int, list[float]] = defaultdict(list)
    for trials in (ts for seeds in grouped.values() for ts in seeds.values()):
        full = [t["end_s"] - t["start_s"] for t in trials if t["status"] == "completed"]
        if not full:
            continue
        typical = statistics.median(full)
        for t in trials:
            if t["status"] == "pruned" and t["epochs"]:
                shares[len(t["epochs"]) - 1].append((t["end_s"] - t["start_s"]) / typical)
    return {epoch: statistics.median(values) for epoch, values in shares.items()}


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


def replay(trials: list[dict], percentile: float, min_epochs: int, costs: dict[int, float],
           min_trials: int = MIN_TRIALS, stopped_count: bool = False) -> Replay:
    """One unpruned campaign's completed trials under a stopping rule (see the module's text).

    A trial is stopped at the first epoch e >= min_epochs - 1 (0-based) whose fitness is below
    the `percentile` of the reference's epoch-e fitness: the trials that finished under the rule
    and had reached e by then - the rule `evolver.pruning.MedianPruner` applies with percentile
    0.5 - or, with `stopped_count`, every trial that had reached e, stopped ones included."""
    done = sorted((t for t in trials if t["status"] == "completed"), key=lambda t: t["start_s"])
    reference: dict[int, list[tuple[float, float]]] = defaultdict(list)  # epoch -> (time reached, fitness)
    stopped, saved, best_stopped = 0, 0.0, False
    best = max(done, key=lambda t: t["fitness"]) if done else None
    for trial in done:
        duration = trial["end_s"] - trial["start_s"]
        last = len(trial["epochs"]) - 1
        share = {e: cost_at(costs, e, last) for e in range(last + 1)}
        reached_at = {e: trial["start_s"] + share[e] * duration for e in range(last + 1)}
        stopped_at = None
        for epoch in range(min_epochs - 1, last):
            known = [value for when, value in reference[epoch] if when <= reached_at[epoch]]
            if len(known) >= min_trials and trial["epochs"][epoch] < np.quantile(known, percentile):
                stopped_at = epoch
                break
        if stopped_at is None:
            for epoch, value in enumerate(trial["epochs"]):  # known to the rule once the trial ends
                reference[epoch].append((trial["end_s"], value))
            continue
        stopped += 1
        saved += (1.0 - share[stopped_at]) * duration
        best_stopped = best_stopped or trial is best
        if stopped_count:
            for epoch in range(stopped_at + 1):
                reference[epoch].append((reached_at[epoch], trial["epochs"][epoch]))
    used = sum(t["end_s"] - t["start_s"] for t in done)
    return Replay(stopped / len(done), saved / used, best_stopped)


def oracle_saving(trials: list[dict], min_epochs: int, costs: dict[int, float]) -> float:
    """Worker-seconds saved by stopping, after epoch min_epochs - 1, every completed trial that does
    not set a new best (in the order trials ended): what a rule that never errs could save."""
    done = sorted((t for t in trials if t["status"] == "completed"), key=lambda t: t["end_s"])
    best, saved = float("-inf"), 0.0
    for trial in done:
        if trial["fitness"] > best:
            best = trial["fitness"]
        else:
            share = cost_at(costs, min_epochs - 1, len(trial["epochs"]) - 1)
            saved += (1.0 - share) * (trial["end_s"] - trial["start_s"])
    return saved / sum(t["end_s"] - t["start_s"] for t in done)


def report_pruning(ledger: Path) -> dict:
    grouped = campaigns(ledger)
    costs = stop_costs(grouped)
    unpruned = [trials for config, seeds in grouped.items() if "early_stopping" not in CONFIGS[config].spec
                for trials in seeds.values()]
    if not unpruned or not costs:
        print("\nearly-stopping replay: needs campaigns with and without early stopping in the ledger")
        return {}
    print("\nearly stopping replayed over the %d campaigns that ran without it (search paths held fixed)"
          % len(unpruned))
    print("a trial stopped after epoch e costs this share of a completed one (measured on the pruned "
          "campaigns): " + ", ".join(f"epoch {e + 1}: {c:.2f}" for e, c in sorted(costs.items())))
    print("reference: 'finished' = the trials the rule let finish (evolver's MedianPruner, as Optuna's); "
          "'all' = every trial that reached the epoch, stopped ones included")
    print(f"{'rule':44s} {'stopped':>8s} {'saved':>6s} {'best stopped':>13s}")
    figures: dict = {"stop_costs": costs}
    for percentile, min_epochs in RULES:
        if min_epochs - 1 not in costs:
            continue
        for stopped_count in (False, True):
            results = [replay(t, percentile, min_epochs, costs, stopped_count=stopped_count) for t in unpruned]
            reference = "all" if stopped_count else "finished"
            name = ("median" if percentile == 0.5 else f"{int(percentile * 100)}th percentile") + \
                f" of {reference}, from epoch {min_epochs}"
            stopped = statistics.mean(r.stopped_share for r in results)
            saved = statistics.mean(r.saved_share for r in results)
            cut = sum(r.best_stopped for r in results)
            figures[f"replay_{percentile}_{min_epochs}_{reference}"] = (stopped, saved, cut)
            print(f"{name:44s} {stopped:8.2f} {saved:6.2f} {cut:>6d} of {len(results):<3d}")
    for min_epochs in sorted({m for _, m in RULES}):
        if min_epochs - 1 in costs:
            bound = statistics.mean(oracle_saving(t, min_epochs, costs) for t in unpruned)
            figures[f"oracle_{min_epochs}"] = bound
            print(f"{f'oracle, from epoch {min_epochs}':44s} {'':8s} {bound:6.2f} {0:>6d} of {len(unpruned):<3d}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", type=Path, default=LEDGER)
    report_pruning(parser.parse_args().ledger)


if __name__ == "__main__":
    main()
