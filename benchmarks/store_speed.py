"""SQL cost per trial of the coordinator's hot path on SQLite (no test; prints numbers).

Per trial: add_trial + start_trial + finish_trial + close_generation (what the coordinator does
for each trial), plus, reported apart, record_epoch. No bound of its own: it is part of the
coordinator's <= 10 ms CPU per trial (issue 12), which benchmarks.coordinator_scale measures.

    .venv/bin/python benchmarks/store_speed.py [--trials 1000] [--population 8] [--epochs 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evolver.store import Placement, Store
from yolo.hyp import Hyperparameters

HYP_NAMES = tuple(Hyperparameters().to_dict())
METRICS = {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map": 0.2,
           "val_box_loss": 0.05, "val_obj_loss": 0.04, "val_cls_loss": 0.01}


def measure(store: Store, campaign: int, trials: int, population: int, epochs: int) -> tuple[float, float]:
    """(seconds on the hot path, seconds recording epochs) over `trials` trials."""
    hot = epoch_time = 0.0
    for number in range(trials):
        hyp = {name: 0.01 * (i + 1) + number * 1e-6 for i, name in enumerate(HYP_NAMES)}
        start = time.perf_counter()
        store.add_trial(campaign, number, number // population, hyp, [max(number - 1, 0)], seed=number)
        store.start_trial(campaign, number, 1, Placement(f"w{number % 16}", "node", "127.0.0.1", str(number % 16)))
        hot += time.perf_counter() - start

        start = time.perf_counter()
        for epoch in range(epochs):
            store.record_epoch(campaign, number, 1, epoch, METRICS, 0.2)
        epoch_time += time.perf_counter() - start

        start = time.perf_counter()
        store.finish_trial(campaign, number, 1, "completed", metrics=METRICS, fitness=0.2 + number * 1e-6,
                           epochs_done=epochs)
        store.close_generation(campaign, number // population, population)
        hot += time.perf_counter() - start
    return hot, epoch_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Store.open(Store.sqlite_url(Path(folder) / "evolver.db")) as store:
        campaign = store.create_campaign("speed", {}, folder)
        hot, epochs = measure(store, campaign, args.trials, args.population, args.epochs)
        start = time.perf_counter()
        listed = store.trials(campaign)
        read = time.perf_counter() - start
    per_trial_ms = 1000 * hot / args.trials
    print(f"{args.trials} trials, population {args.population}, SQLite WAL synchronous=NORMAL")
    print(f"hot path (add + start + finish + close_generation): {per_trial_ms:.2f} ms/trial "
          "(part of the coordinator's <= 10 ms per trial)")
    print(f"record_epoch: {1000 * epochs / max(1, args.trials * args.epochs):.2f} ms/epoch")
    print(f"trials() reading all {len(listed)} trials: {1000 * read:.0f} ms")


if __name__ == "__main__":
    main()
