"""Diagnostic for the side-by-side fine-tune (`benchmarks/reference_finetune.py`): our trainer with
YOLOv5 7.0's learning-rate schedule, which runs one epoch late once warmup is over.

YOLOv5's train.py builds `LambdaLR` (whose constructor already steps once) and then sets
`scheduler.last_epoch = start_epoch - 1`, so after warmup epoch e trains at lr0 * lf(e - 1), where
ours (`yolo.optim.Schedule`) uses lr0 * lf(e). In a 5-epoch fine-tune of 28 batches per epoch,
warmup (100 iterations) ends inside epoch 4, so only the last epoch differs: lr 0.00406 instead of
0.00208. Everything else is `evolver train` unchanged: with the same seed, the first four epochs
of this run are those of the benchmark's `ours` run, byte for byte (results.csv).

    .venv/bin/python -m benchmarks.reference_late_lr [--seeds 0 1 2]   # ~2 min a seed on a quiet machine
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.reference_finetune import Settings
from benchmarks.reference_tools import score_with_ours
from benchmarks.search_report import mean_se


def yolov5_late_schedule() -> None:
    """Make `yolo.optim.Schedule` apply lf(e - 1) after the epoch in which warmup ends, as YOLOv5 does."""
    from yolo import optim

    plain = optim.Schedule.apply

    def late(self, optimizer, epoch: int, iteration: int) -> None:
        # The epoch in which warmup ends keeps warmup's last value, lf(e); YOLOv5's scheduler shows from the next.
        plain(self, optimizer, epoch - 1 if epoch * self.batches_per_epoch > self.warmup_iterations else epoch,
              iteration)

    optim.Schedule.apply = late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(Settings.seeds))
    args = parser.parse_args()
    settings = Settings()
    yolov5_late_schedule()
    from evolver.cli import main as evolver_main

    fitness = []
    with tempfile.TemporaryDirectory(prefix="reference-late-lr-") as tmp:
        for seed in args.seeds:
            name = f"late-seed{seed}"
            evolver_main(["train", "--data", str(settings.dataset), "--weights", str(settings.weights),
                          "--epochs", str(settings.epochs), "--img", str(settings.img_size),
                          "--batch", str(settings.batch_size), "--workers", str(settings.workers), "--seed", str(seed),
                          "--device", "cpu", "--project", tmp, "--name", name, "--quiet"])
            scores = score_with_ours(Path(tmp) / name / "weights" / "last.pt", settings.dataset, settings.split,
                                     settings.img_size, Path(tmp) / f"{name}-val.log")
            fitness.append(scores.fitness)
            print(f"seed {seed}: {settings.split} fitness {scores.fitness:.4f} (mAP50 {scores.map50:.3f}, "
                  f"mAP50-95 {scores.map:.3f})", flush=True)
    mean, se = mean_se(fitness)
    print(f"YOLOv5's late schedule, {len(fitness)} seeds: {settings.split} fitness {mean:.4f} ± {se:.4f}")


if __name__ == "__main__":
    main()
