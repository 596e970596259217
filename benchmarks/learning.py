"""Learning benchmark: yolov5n from scratch on the default synthetic dataset, 15 epochs at 256 px.

Target (issue 2): mAP@0.5 >= 0.8 within 15 epochs, <= 10 minutes wall time on the 2-core CPU.
Prints the per-epoch curve and the wall time (dataset generation included).

    .venv/bin/python -m benchmarks.learning [--epochs 15] [--img 256] [--batch 16]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from yolo.hyp import Hyperparameters
from yolo.synthetic import default_synthetic_dataset
from yolo.train import EpochReport, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--img", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cfg", default="yolov5n")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    start = time.perf_counter()
    data = default_synthetic_dataset()
    print(f"dataset: {data} ({time.perf_counter() - start:.1f}s)")
    print(f"{'epoch':>5} {'box':>7} {'obj':>7} {'cls':>7} {'P':>6} {'R':>6} {'mAP50':>6} {'mAP':>6} {'sec':>6}")

    def show(r: EpochReport) -> None:
        m = r.val.metrics
        print(f"{r.epoch + 1:>5} {r.train_losses[0]:7.4f} {r.train_losses[1]:7.4f} {r.train_losses[2]:7.4f} "
              f"{m.precision:6.3f} {m.recall:6.3f} {m.map50:6.3f} {m.map:6.3f} {r.seconds:6.1f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data=str(data), cfg=args.cfg, epochs=args.epochs, img_size=args.img,
                             batch_size=args.batch, workers=args.workers, seed=args.seed,
                             save_dir=f"{tmp}/run", progress=False)
        result = train(config, Hyperparameters(), callbacks=[show])
    wall = time.perf_counter() - start
    best50 = max(row["metrics/mAP_0.5"] for row in result.history)
    print(f"final mAP@0.5 {result.metrics['metrics/mAP_0.5']:.3f}  best mAP@0.5 {best50:.3f}  "
          f"mAP@0.5:0.95 {result.metrics['metrics/mAP_0.5:0.95']:.3f}")
    print(f"wall time {wall:.1f}s ({wall / 60:.2f} min) for {result.epochs_completed} epochs")


if __name__ == "__main__":
    main()
