"""The real campaigns of the search-efficiency benchmark, and the ledger they write.

Every configuration fine-tunes the demo's start weights (`examples/synthetic-campaign.yaml`: 3
epochs of yolov5n at 160 px on `synthetic-shifted`) until it has used the same budget of
worker-seconds; each worker is one CPU core (torch 1 thread), so a worker-second is a core-second
whichever configuration spends it. A campaign runs in its own process through the real
coordinator on a private local Ray with as many CPUs as it has workers, and is cancelled through
SQL (`evolver.lifecycle.cancel`) once its trials' wall time, summed, reaches the budget: trials
still running then are cut there and count what they used. Every trial of every campaign goes into
the ledger (JSON lines): configuration, seed, hyperparameters, status, per-epoch fitness and its
start / end in seconds from the campaign's start.

    python -m benchmarks.search_campaigns one --experiment search --config async-ga --seed 0
    python -m benchmarks.search_campaigns all --experiment stopping-10 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from evolver.campaign import CampaignSpec

REPO = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO / "examples" / "synthetic-campaign.yaml"
LEDGER = REPO / "benchmarks" / "results" / "search_ledger.jsonl"


@dataclass(frozen=True)
class SearchConfig:
    name: str
    workers: int
    spec: dict[str, Any] = field(default_factory=dict)  # over the demo's campaign


MEDIAN = {"rule": "median", "min_epochs": 2, "min_trials": 3}
MEDIAN_FROM_FIRST_EPOCH = {**MEDIAN, "min_epochs": 1}  # the most a 3-epoch trial can save
CONFIGS = {c.name: c for c in (
    SearchConfig("classic", 1, {"population": 1, "sync": True}),  # YOLOv5's --evolve loop
    SearchConfig("async-ga", 2, {"population": 2}),
    SearchConfig("async-ga-median", 2, {"population": 2, "early_stopping": MEDIAN}),
    SearchConfig("async-ga-median-1", 2, {"population": 2, "early_stopping": MEDIAN_FROM_FIRST_EPOCH}),
    SearchConfig("random", 2, {"population": 2, "searcher": "random"}),
    SearchConfig("tpe", 2, {"population": 2, "searcher": "tpe"}),
    SearchConfig("cmaes", 2, {"population": 2, "searcher": "cmaes"}),
    # YOLOv5 master's population GA with its defaults (augmentation genes only), its population
    # and generations scaled to the budget (~30 trials) so that its schedules run their course.
    SearchConfig("population-ga", 2, {"searcher": "yolov5-population", "population": 6, "generations": 5}),
    SearchConfig("blx", 2, {"population": 2, "searcher": "blx"}),  # Ultralytics' tuner
)}


@dataclass(frozen=True)
class Experiment:
    """Campaigns compared with one another: run on the same day, so on the same machine (this kind
    of machine is a Xeon some days and an EPYC others, 1.5-2x apart), into one ledger."""

    name: str
    configs: tuple[str, ...]
    ledger: Path
    plot: Path  # best fitness against worker-seconds
    trial: dict[str, Any] = field(default_factory=dict)  # over the demo's trial, e.g. {"epochs": 10}
    budget: float = 600.0  # worker-seconds per campaign


EXPERIMENTS = {e.name: e for e in (
    # Every searcher at equal worker-seconds (2026-12-02, morning).
    Experiment("search", ("classic", "async-ga", "async-ga-median", "random", "tpe", "cmaes"), LEDGER,
               LEDGER.with_name("search_efficiency.png")),
    # Early stopping judged from epoch 2 and from epoch 1, against same-day baselines (2026-12-02, afternoon).
    Experiment("stopping", ("classic", "async-ga", "async-ga-median", "async-ga-median-1"),
               LEDGER.with_name("stopping_ledger.jsonl"), LEDGER.with_name("stopping_efficiency.png")),
    # Where stopping has room: 10-epoch trials (evolver's default), judged from epoch 2.
    Experiment("stopping-10", ("classic", "async-ga", "async-ga-median"),
               LEDGER.with_name("stopping10_ledger.jsonl"), LEDGER.with_name("stopping10_efficiency.png"),
               trial={"epochs": 10}, budget=900.0),
    # The evolution today's YOLO users run (YOLOv5 master's population GA, Ultralytics' BLX tuner)
    # beside the classic loop and the async GA, rerun the same day (2026-12-07).
    Experiment("searchers", ("classic", "async-ga", "population-ga", "blx"),
               LEDGER.with_name("searchers_ledger.jsonl"), LEDGER.with_name("searchers_efficiency.png")),
)}


def demo_spec(trial: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo campaign's spec (JSON form), its trials' training changed by `trial`."""
    return {**CampaignSpec.from_yaml(DEMO_SPEC).to_json_dict(), **(trial or {})}


def campaign_spec(config: SearchConfig, seed: int, trial: dict[str, Any] | None = None) -> CampaignSpec:
    # Generations: enough to outlast the budget, unless the configuration sets them.
    row = {**demo_spec(trial), "generations": 10_000, **config.spec, "name": f"{config.name}-s{seed}", "seed": seed,
           "cpu_workers": config.workers, "keep_top_k": 1, "exports": [],
           "confirm": False}  # the benchmark's own held-out retrainings judge the winners
    return CampaignSpec.model_validate(row)


def worker_seconds(trials, now: datetime) -> float:
    """Wall time of every attempt's trial so far, summed (running ones up to `now`)."""
    total = 0.0
    for t in trials:
        if t.started_at is not None:
            total += ((t.ended_at or now) - t.started_at).total_seconds()
    return max(total, 0.0)


def _stop_at_budget(url: str, campaign_id: int, budget: float, done: threading.Event) -> None:
    from evolver import lifecycle
    from evolver.store import Store

    with Store.open(url) as store:
        while not done.wait(0.5):
            if worker_seconds(store.trials(campaign_id), datetime.now(timezone.utc)) >= budget:
                lifecycle.cancel(store, campaign_id)
                return


def run_one(experiment: Experiment, config: SearchConfig, seed: int, budget: float) -> None:
    """One campaign of an experiment to its budget; its trials appended to the experiment's ledger."""
    import torch

    from evolver import coordinator
    from evolver.cluster import connect
    from evolver.store import Store

    torch.set_num_threads(1)
    spec = campaign_spec(config, seed, experiment.trial)
    with tempfile.TemporaryDirectory(prefix="evolver-search-") as tmp:
        url = Store.sqlite_url(Path(tmp) / "evolver.db")
        with Store.open(url) as store:
            campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(Path(tmp) / spec.name))
            connect(num_cpus=config.workers)
            done = threading.Event()
            watcher = threading.Thread(target=_stop_at_budget, args=(url, campaign_id, budget, done), daemon=True)
            watcher.start()
            started = time.time()
            outcome = coordinator.run_campaign(store, campaign_id, coordinator.CoordinatorSettings(progress=False))
            done.set()
            rows = _ledger_rows(store, campaign_id, config, seed, budget)
    with open(experiment.ledger, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    best = max((r["fitness"] for r in rows if r["fitness"] is not None), default=None)
    print(f"{config.name} seed {seed}: {outcome.status}, {len(rows)} trials, best {best}, "
          f"{time.time() - started:.0f} s wall", flush=True)


def _ledger_rows(store, campaign_id: int, config: SearchConfig, seed: int, budget: float) -> list[dict]:
    trials = store.trials(campaign_id)
    origin = min((t.started_at for t in trials if t.started_at), default=None)
    rows = []
    for t in trials:
        if t.started_at is None:
            continue
        rows.append({
            "kind": "trial", "config": config.name, "workers": config.workers, "seed": seed, "budget": budget,
            "number": t.number, "generation": t.generation, "status": t.status, "parents": list(t.parents),
            "hyp": t.hyp, "fitness": t.fitness, "metrics": t.metrics, "training_seed": t.seed,
            "epochs": [e.fitness for e in store.epochs(campaign_id, t.number)],
            "start_s": (t.started_at - origin).total_seconds(),
            "end_s": (t.ended_at - origin).total_seconds() if t.ended_at else None,
        })
    return rows


def run_all(experiment: Experiment, configs: list[str], seeds: list[int], budget: float, cores: int) -> None:
    """Every (config, seed) of the experiment not yet in its ledger, `cores` workers at a time:
    seed by seed, a 1-worker campaign filling a core that a 2-worker one cannot use yet (first fit)."""
    import subprocess
    import sys

    done = set(read_ledger(experiment.ledger, "trial", ["config", "seed"]).itertuples(index=False, name=None))
    queue = [(CONFIGS[c], s) for s in seeds for c in configs if (c, s) not in done]
    running: list[tuple[subprocess.Popen, int]] = []
    while queue or running:
        running = [(p, w) for p, w in running if p.poll() is None]
        free = cores - sum(w for _, w in running)
        for job in list(queue):
            config, seed = job
            if config.workers <= free:
                queue.remove(job)
                free -= config.workers
                command = [sys.executable, "-m", "benchmarks.search_campaigns", "one", "--experiment",
                           experiment.name, "--config", config.name, "--seed", str(seed), "--budget", str(budget)]
                print(f"starting {config.name} seed {seed}", flush=True)
                running.append((subprocess.Popen(command, cwd=REPO), config.workers))
        time.sleep(2)


def read_ledger(ledger: Path, kind: str, columns: list[str]) -> pd.DataFrame:
    """`columns` of the ledger's rows of one kind ("trial", "holdout"), one per JSON line, in the
    ledger's order; a field a row lacks is missing (NaN); no rows where the ledger does not exist
    yet. Floats are read exactly: pandas' default JSON reader rounds the last digit of some."""
    try:
        rows = pd.read_json(ledger, lines=True, precise_float=True) if ledger.exists() else pd.DataFrame()
    except ValueError as error:
        raise ValueError(f"{ledger}: not a JSON-lines ledger ({error})") from None
    if rows.empty:
        return pd.DataFrame(columns=columns)
    return rows.loc[rows["kind"] == kind].reindex(columns=columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("one", help="run one campaign to its budget")
    one.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    one.add_argument("--config", choices=sorted(CONFIGS), required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--budget", type=float, help="worker-seconds (default: the experiment's)")
    every = sub.add_parser("all", help="every configuration and seed of an experiment missing from its ledger")
    every.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    every.add_argument("--configs", help="comma-separated (default: the experiment's)")
    every.add_argument("--seeds", default="0,1,2", help="comma-separated")
    every.add_argument("--budget", type=float, help="worker-seconds per campaign (default: the experiment's)")
    every.add_argument("--cores", type=int, default=2, help="workers running at once")
    args = parser.parse_args()
    experiment = EXPERIMENTS[args.experiment]
    budget = args.budget or experiment.budget
    if args.command == "one":
        run_one(experiment, CONFIGS[args.config], args.seed, budget)
    else:
        configs = args.configs.split(",") if args.configs else list(experiment.configs)
        run_all(experiment, configs, [int(s) for s in args.seeds.split(",")], budget, args.cores)


if __name__ == "__main__":
    main()
