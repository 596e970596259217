"""Does a campaign find better hyperparameters for less compute? The search-efficiency benchmark.

1. `campaigns`: real campaigns on the demo's fine-tune task, 3 seeds each, every campaign stopped
   at the same budget of worker-seconds, in experiments (benchmarks/search_campaigns.py), each
   run on one day into its own ledger under `benchmarks/results/`:
   `search` (about 1 hour 45 minutes on a 2-core CPU) - YOLOv5's classic loop (population 1,
   sync, 1 worker), the asynchronous GA with 2 workers, the same with median stopping, random
   search, TPE and CMA-ES (2 workers each), `search_ledger.jsonl`;
   `stopping` (about 1 hour) - the classic loop, the async GA, and the async GA with median
   stopping judging from epoch 2 and from epoch 1, `stopping_ledger.jsonl`;
   `stopping-10` (about 1 hour 15 minutes) - the same but 10-epoch trials at 900 worker-seconds,
   median stopping from epoch 2, `stopping10_ledger.jsonl`.
2. `holdout` (about 15 minutes): each campaign's winner retrained twice with fresh seeds and
   validated on 256 held-out images no trial saw, against the base hyperparameters retrained 8
   times (benchmarks/search_holdout.py).
3. `report`: best fitness against worker-seconds (table, and a PNG), the worker-seconds each
   configuration needs to reach the classic loop's final best, the held-out comparison
   (benchmarks/search_report.py); then stopping rules replayed over the campaigns that ran without
   one: what each would save, and the bound no rule can beat (benchmarks/search_pruning.py).
4. `simulate` (about 30 minutes): a surrogate of fitness fitted to the `search` ledger's real trials drives
   the real searchers and breeding rules with 1, 8, 64 and 256 simulated workers and 10-minute
   trials; its last line is the parallel efficiency at 64 workers (benchmarks/search_simulation.py).

Without a command: `report` and `simulate` from the committed ledgers. `all`: 1 to 4 (the campaigns
and retrainings missing from the ledgers).

    pip install -e '.[dev,bench]'
    python -m benchmarks.search_efficiency [all|campaigns|holdout|report|simulate]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.search_campaigns import CONFIGS, EXPERIMENTS, run_all
from benchmarks.search_holdout import run_holdout
from benchmarks.search_pruning import report_pruning
from benchmarks.search_report import report
from benchmarks.search_simulation import SEARCHES, Settings, print_efficiency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="default",
                        choices=("default", "all", "campaigns", "holdout", "report", "simulate"))
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="real campaigns: comma-separated")
    parser.add_argument("--budget", type=float, help="worker-seconds per real campaign (default: the experiment's)")
    parser.add_argument("--seeds", default="0,1,2", help="real campaigns: comma-separated seeds")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="real campaigns: only these (comma-separated)")
    parser.add_argument("--sim-seeds", type=int, default=Settings.seeds, help="simulated campaigns per cell")
    parser.add_argument("--sim-trials", type=int, default=Settings.trials, help="cap per simulated campaign")
    parser.add_argument("--searches", default=",".join(SEARCHES), help="simulated searchers")
    parser.add_argument("--workers", default="1,8,64,256", help="simulated worker counts")
    args = parser.parse_args()
    experiments = [EXPERIMENTS[name] for name in args.experiments.split(",")]
    steps = {"default": ("report", "simulate"), "all": ("campaigns", "holdout", "report", "simulate")}
    for step in steps.get(args.command, (args.command,)):
        if step == "simulate":  # the surrogate is fitted to the search experiment's ledger
            print_efficiency(EXPERIMENTS["search"].ledger, args.searches.split(","),
                             [int(w) for w in args.workers.split(",")],
                             Settings(seeds=args.sim_seeds, trials=args.sim_trials))
            continue
        for experiment in experiments:
            if step == "campaigns":
                configs = [c for c in experiment.configs if c in args.configs.split(",")]
                run_all(experiment, configs, [int(s) for s in args.seeds.split(",")], args.budget or experiment.budget, 2)
            elif step == "holdout":
                with tempfile.TemporaryDirectory(prefix="evolver-holdout-") as tmp:
                    run_holdout(experiment, Path(tmp))
            else:
                print(f"\n=== experiment '{experiment.name}': {experiment.ledger.name}")
                report(experiment.ledger, experiment.plot)
                report_pruning(experiment.ledger)


if __name__ == "__main__":
    main()
