"""Do the early epochs rank the trials? Spearman rank correlation between a trial's fitness after
epoch e and its final fitness, over the completed trials of a ledger's campaigns.

An early-stopping rule judges a trial by its fitness after an early epoch, so it can only pay
where that fitness ranks the trials as the final one does. Per experiment this prints, for every
epoch before the last, the rank correlation over

- the completed trials of the campaigns that ran without early stopping (the figure the README
  quotes: these trials are the search's own, none was filtered by its early epochs), and
- within their better half (final fitness above the median): where the campaign's best trial is;
- every completed trial of the ledger, the survivors of the stopping campaigns included, for
  comparison only: a survivor passed the rule's bar at an early epoch, so they are a selected
  sample.

Trials of different campaigns are pooled; ties get their average rank.

    python -m benchmarks.search_ranks [--ledger L]
    python -m benchmarks.search_efficiency ranks [--experiments stopping-10]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.search_campaigns import CONFIGS, LEDGER
from benchmarks.search_report import campaigns


@dataclass(frozen=True)
class EarlyRanks:
    """The rank correlations of one set of trials: `by_epoch[e - 1]` is that of the fitness after
    epoch e (1-based) with the final fitness, for every epoch before the last."""

    population: str
    trials: int
    by_epoch: tuple[float, ...]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; equal values share the mean of the ranks they span."""
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    up_to = np.searchsorted(ordered, values, side="right")
    return (below + up_to + 1) / 2.0


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences (nan where either is constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two sequences of one length, got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"spearman needs at least 2 pairs, got {len(a)}")
    ra, rb = average_ranks(a) - (len(a) + 1) / 2.0, average_ranks(b) - (len(b) + 1) / 2.0
    scale = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / scale) if scale > 0 else float("nan")


def early_ranks(population: str, trials: list[dict]) -> EarlyRanks:
    """The rank correlations over `trials` (completed ledger rows, all with the same epoch count)."""
    lengths = {len(t["epochs"]) for t in trials}
    if len(lengths) != 1:
        raise ValueError(f"{population}: trials of different lengths ({sorted(lengths)} epochs) "
                         "cannot be ranked by epoch")
    final = [t["fitness"] for t in trials]
    by_epoch = tuple(spearman([t["epochs"][e] for t in trials], final) for e in range(lengths.pop() - 1))
    return EarlyRanks(population, len(trials), by_epoch)


def better_half(trials: list[dict]) -> list[dict]:
    """The trials whose final fitness is above the median of `trials`'."""
    median = float(np.median([t["fitness"] for t in trials]))
    return [t for t in trials if t["fitness"] > median]


def ledger_ranks(ledger: Path) -> list[EarlyRanks]:
    """The three sets of the module's text, for one ledger (those with fewer than 2 trials left out)."""
    grouped = campaigns(ledger)
    completed = {config: [t for ts in seeds.values() for t in ts
                          if t["status"] == "completed" and t["fitness"] is not None]
                 for config, seeds in grouped.items()}
    unstopped = [t for config, ts in completed.items() if "early_stopping" not in CONFIGS[config].spec for t in ts]
    sets = (("campaigns without early stopping", unstopped),
            ("  their better half (final fitness above the median)", better_half(unstopped) if unstopped else []),
            ("every completed trial (survivors of stopping included)", [t for ts in completed.values() for t in ts]))
    return [early_ranks(name, trials) for name, trials in sets if len(trials) >= 2]


def report_ranks(ledger: Path) -> list[EarlyRanks]:
    rows = ledger_ranks(ledger)
    if not rows:
        print("\nearly-epoch ranks: no completed trials in the ledger")
        return rows
    epochs = len(rows[0].by_epoch)
    print("\nSpearman rank correlation of the fitness after epoch e with the final fitness "
          "(completed trials, campaigns pooled)")
    print(f"{'trials':58s} {'n':>4s} " + " ".join(f"{f'e={e}':>6s}" for e in range(1, epochs + 1)))
    for row in rows:
        print(f"{row.population:58s} {row.trials:4d} " + " ".join(f"{r:+6.2f}" for r in row.by_epoch))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", type=Path, default=LEDGER)
    args = parser.parse_args()
    if not args.ledger.is_file():
        parser.error(f"--ledger {args.ledger}: no such file")
    report_ranks(args.ledger)


if __name__ == "__main__":
    main()
