"""Speed benchmark on COCO128 (train = val = its 128 images), CPU, batch 16.

Train images/s (augmented epoch incl. data loading, mosaic on) and val images/s (rect batches of
32 incl. NMS and metrics) for yolov5n@320, yolov5n@640 and yolov5s@640. Each run trains
`--epochs` epochs and reports the last one (the first also decodes and caches the images).
Reference implementation on this machine (FIELD-NOTES): yolov5n@320 ~19 train / ~49 val img/s.

    .venv/bin/python -m benchmarks.speed [--only yolov5n@320] [--epochs 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import torch

from yolo.hyp import Hyperparameters
from yolo.train import EpochReport, TrainConfig, train

SHARED = Path(os.environ.get("EVOLVER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CASES = ("yolov5n@320", "yolov5n@640", "yolov5s@640")
REFERENCE = {"yolov5n@320": (19.0, 49.0), "yolov5n@640": (5.0, None), "yolov5s@640": (1.9, None)}


def measure(case: str, epochs: int, workers: int) -> tuple[float, float]:
    cfg, img = case.split("@")
    reports: list[EpochReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data=str(SHARED / "datasets/coco128/coco128.yaml"), cfg=cfg, epochs=epochs,
                             img_size=int(img), batch_size=16, workers=workers, save_dir=f"{tmp}/run",
                             progress=False)
        train(config, Hyperparameters(), callbacks=[reports.append])
    last = reports[-1]
    train_seconds = last.seconds - last.val.seconds
    return last.val.images / train_seconds, last.val.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=CASES, action="append")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    print(f"{'case':<14} {'train img/s':>11} {'val img/s':>10} {'ref train':>10} {'ref val':>8}")
    for case in args.only or CASES:
        train_ips, val_ips = measure(case, args.epochs, args.workers)
        ref_train, ref_val = REFERENCE[case]
        print(f"{case:<14} {train_ips:11.1f} {val_ips:10.1f} {ref_train:10.1f} {ref_val or float('nan'):8.1f}", flush=True)


if __name__ == "__main__":
    main()
