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
   `searchers` (about 1 hour 10 minutes on a quiet machine) - the classic loop and the async GA
   beside YOLOv5 master's population GA and Ultralytics' BLX tuner, `searchers_ledger.jsonl`.
2. `holdout` (about 15 minutes): each campaign's winner retrained twice with fresh seeds and
   validated on 256 held-out images no trial saw, against the base hyperparameters retrained 8
   times (benchmarks/search_holdout.py).
3. `report`: best fitness against worker-seconds (table, and a PNG per experiment), the
   worker-seconds each configuration needs to reach the classic loop's final best, the held-out
   comparison (benchmarks/search_report.py); then stopping rules replayed over the campaigns that
   ran without one: what each would save, and the bound no rule can beat
   (benchmarks/search_pruning.py); then how well the early epochs rank the trials (`ranks`).
   The PNGs go to `--plots DIR`, by default a new scratch folder (printed): `--plots
   benchmarks/results` remakes the README's. Without matplotlib (the `bench` extra) it prints the
   tables and no plot.
4. `ranks`: the Spearman rank correlation of the fitness after each epoch with the final fitness
   over the completed trials (benchmarks/search_ranks.py).
5. `simulate` (about 30 minutes): a surrogate of fitness fitted to the `search` ledger's real trials drives
   the real searchers and breeding rules with 1, 8, 64 and 256 simulated workers and 10-minute
   trials; its last line is the parallel efficiency at 64 workers (benchmarks/search_simulation.py).

Without a command: `report` and `simulate` from the committed ledgers. `all`: 1, 2, 3 and 5 (the
campaigns and retrainings missing from the ledgers).

    pip install -e '.[dev,bench]'
    python -m benchmarks.search_efficiency [all|campaigns|holdout|report|ranks|simulate] [--plots DIR]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from benchmarks.search_campaigns import CONFIGS, EXPERIMENTS, run_all
from benchmarks.search_holdout import run_holdout
from benchmarks.search_pruning import report_pruning
from benchmarks.search_ranks import report_ranks
from benchmarks.search_report import report
from benchmarks.search_simulation import SEARCHES, Settings, print_efficiency

INSTALL_BENCH = "pip install -e '.[bench]'"


def installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def plot_folder(requested: Path | None) -> Path | None:
    """Where `report` draws its PNGs: the folder asked for, else a new scratch folder - never the
    committed plots unless asked. None (and says so) without matplotlib."""
    if not installed("matplotlib"):
        if requested is not None:
            sys.exit(f"--plots {requested}: drawing needs matplotlib, the `bench` extra: {INSTALL_BENCH}")
        print(f"no plots: matplotlib is not installed (the `bench` extra: {INSTALL_BENCH}); the tables follow")
        return None
    folder = requested if requested is not None else Path(tempfile.mkdtemp(prefix="evolver-search-plots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"plots go to {folder}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="default",
                        choices=("default", "all", "campaigns", "holdout", "report", "ranks", "simulate"))
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="real campaigns: comma-separated")
    parser.add_argument("--budget", type=float, help="worker-seconds per real campaign (default: the experiment's)")
    parser.add_argument("--seeds", default="0,1,2", help="real campaigns: comma-separated seeds")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="real campaigns: only these (comma-separated)")
    parser.add_argument("--plots", type=Path, help="report: write the PNGs into this folder (default: a new "
                        "scratch folder; `--plots benchmarks/results` remakes the README's)")
    parser.add_argument("--sim-seeds", type=int, default=Settings.seeds, help="simulated campaigns per cell")
    parser.add_argument("--sim-trials", type=int, default=Settings.trials, help="cap per simulated campaign")
    parser.add_argument("--searches", default=",".join(SEARCHES), help="simulated searchers")
    parser.add_argument("--workers", default="1,8,64,256", help="simulated worker counts")
    args = parser.parse_args()
    unknown = sorted(set(args.experiments.split(",")) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"--experiments: unknown {', '.join(unknown)} (known: {', '.join(EXPERIMENTS)})")
    experiments = [EXPERIMENTS[name] for name in args.experiments.split(",")]
    steps = {"default": ("report", "simulate"), "all": ("campaigns", "holdout", "report", "simulate")}
    chosen = steps.get(args.command, (args.command,))
    plots = plot_folder(args.plots) if "report" in chosen else None
    for step in chosen:
        if step == "simulate":  # the surrogate is fitted to the search experiment's ledger
            if not installed("sklearn"):
                sys.exit(f"simulate needs scikit-learn, the `bench` extra: {INSTALL_BENCH}")
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
            elif step == "ranks":
                print(f"\n=== experiment '{experiment.name}': {experiment.ledger.name}")
                report_ranks(experiment.ledger)
            else:
                print(f"\n=== experiment '{experiment.name}': {experiment.ledger.name}")
                report(experiment.ledger, plots / experiment.plot.name if plots is not None else None)
                report_pruning(experiment.ledger)
                report_ranks(experiment.ledger)


if __name__ == "__main__":
    main()
