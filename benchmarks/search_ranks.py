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

import pandas as pd

from benchmarks.search_campaigns import CONFIGS, LEDGER
from benchmarks.search_report import ledger_trials


@dataclass(frozen=True)
class EarlyRanks:
    """The rank correlations of one set of trials: `by_epoch[e - 1]` is that of the fitness after
    epoch e (1-based) with the final fitness, for every epoch before the last."""

    population: str
    trials: int
    by_epoch: tuple[float, ...]


def early_ranks(population: str, trials: pd.DataFrame) -> EarlyRanks:
    """The rank correlations over `trials` (completed ledger rows, all with the same epoch count):
    pandas' Spearman, nan where either side is constant."""
    lengths = set(trials["epochs"].map(len))
    if len(lengths) != 1:
        raise ValueError(f"{population}: trials of different lengths ({sorted(lengths)} epochs) "
                         "cannot be ranked by epoch")
    fitness = pd.DataFrame(trials["epochs"].tolist(), index=trials.index).assign(final=trials["fitness"])
    with_final = fitness.corr(method="spearman")["final"]
    return EarlyRanks(population, len(trials), tuple(float(r) for r in with_final.iloc[:lengths.pop() - 1]))


def better_half(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials whose final fitness is above the median of `trials`'."""
    return trials[trials["fitness"] > trials["fitness"].median()]


def ledger_ranks(ledger: Path) -> list[EarlyRanks]:
    """The three sets of the module's text, for one ledger (those with fewer than 2 trials left out)."""
    trials = ledger_trials(ledger)
    completed = trials[(trials["status"] == "completed") & trials["fitness"].notna()]
    unstopped = completed[completed["config"].isin([n for n, c in CONFIGS.items() if "early_stopping" not in c.spec])]
    sets = (("campaigns without early stopping", unstopped),
            ("  their better half (final fitness above the median)", better_half(unstopped)),
            ("every completed trial (survivors of stopping included)", completed))
    return [early_ranks(name, trials) for name, trials in sets if len(trials) >= 2]


def report_ranks(ledger: Path) -> list[EarlyRanks]:
    rows = ledger_ranks(ledger)
    if not rows:
        print("\nearly-epoch ranks: no completed trials in the ledger")
        return rows
    print("\nSpearman rank correlation of the fitness after epoch e with the final fitness "
          "(completed trials, campaigns pooled)")
    table = pd.DataFrame([(row.trials, *row.by_epoch) for row in rows], index=[row.population for row in rows],
                         columns=["n", *(f"e={e}" for e in range(1, len(rows[0].by_epoch) + 1))])
    table.columns.name = "trials"
    print(table.to_string(float_format="{:+.2f}".format))
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
